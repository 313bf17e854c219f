"""bench/run_all.sh's table: figures, partial figures of a stopped script, and failures."""

from __future__ import annotations

from pathlib import Path

from bench._support import Figure, write_figures
from bench.figures_table import markdown_table, read_manifest, render, rows_of


def _figure(what: str, ratio: float | None, met: bool | None) -> Figure:
    return Figure("P9", what, "10/s", "base 20/s", ratio, "ratio ≥ 0.5", met, "wrk 1% / 2%")


def _manifest(tmp_path: Path, runs: list[tuple[str, int, str]]) -> Path:
    """runs: (label, exit code, log text); the JSON path is <label>.json beside it."""
    lines = []
    for label, code, log in runs:
        (tmp_path / f"{label}.log").write_text(log)
        lines.append(
            "\t".join([label, f"{label}.py", str(code), "12", "1.00 1.00 1.00",
                       str(tmp_path / f"{label}.json"), str(tmp_path / f"{label}.log"),
                       f"python bench/{label}.py"])
        )  # fmt: skip
    path = tmp_path / "manifest.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_rows_cover_success_partial_and_failure(tmp_path: Path) -> None:
    write_figures(str(tmp_path / "ok.json"), "ok.py", [_figure("fine", 0.5, True)])
    write_figures(str(tmp_path / "part.json"), "part.py", [_figure("half", None, None)])
    manifest = _manifest(
        tmp_path,
        [
            ("ok", 0, "done\n"),
            ("part", 124, "  [chatapi] 10:00:00 connecting 10000\nKeyboardInterrupt\n"),
            ("bad", 1, "noise\nbad: baseline: 3 non-2xx answers\nmore noise\n"),
        ],
    )
    runs = read_manifest(manifest)
    ok, part, bad = (rows_of(r) for r in runs)

    assert ok == [("P9: fine", "10/s", "base 20/s", "0.50×", "ratio ≥ 0.5", "met", "wrk 1% / 2%")]  # noqa: RUF001
    assert part[0][3] == "—" and part[0][5] == "—"
    assert part[1][5] == "FAILED"
    assert "timed out" in part[1][1] and "connecting 10000" in part[1][1]
    assert len(bad) == 1 and bad[0][5] == "FAILED"
    assert "bad: baseline: 3 non-2xx answers" in bad[0][1]

    text = render(runs, "now", "1.00 1.00 1.00", 60.0)
    assert "Goals: 1 met, 0 missed; 2 script(s) failed" in text


def test_markdown_table_escapes_pipes_and_pads() -> None:
    table = markdown_table([("a|b", "x", "y", "1.00×", "g", "met", "c")])  # noqa: RUF001
    lines = table.splitlines()
    assert "a\\|b" in lines[2]
    assert len({len(line) for line in lines}) == 1  # every line padded to the same width
