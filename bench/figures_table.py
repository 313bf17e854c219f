"""One table from the figure scripts' `--json` files: what bench/run_all.sh prints at the end.

run_all.sh writes a manifest (one tab-separated line per script it ran: label, script,
exit code, seconds, load average at its start, JSON path, log path, command). This reads
it with each script's JSON, prints a markdown table (readable as text too) with a header
saying when, on what and under what load it ran, and writes the same text to `--out`.

A script that failed or timed out still gets a row: its label, FAILED, its exit code and
the last line of its log. A figure whose target could not be measured shows "—" as its
verdict.

    python bench/figures_table.py bench/results/manifest.tsv --out bench/results/latest.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

COLUMNS = ("figure", "ours", "baseline", "ratio", "goal", "met?", "driver CPU")


@dataclass(frozen=True)
class Run:
    """One line of the manifest: a script run_all.sh ran."""

    label: str
    script: str
    exit_code: int
    seconds: float
    load_at_start: str
    json_path: Path
    log_path: Path
    command: str


def read_manifest(path: Path) -> list[Run]:
    """The manifest's runs, in the order they ran."""
    runs = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        label, script, code, seconds, load, json_path, log_path, command = line.split("\t")
        runs.append(
            Run(label, script, int(code), float(seconds), load, Path(json_path), Path(log_path),
                command)
        )  # fmt: skip
    return runs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict(met: bool | None) -> str:
    if met is None:
        return "—"
    return "met" if met else "**missed**"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"  # noqa: RUF001 (a times sign)


def _why(log: Path, script: str, timed_out: bool) -> str:
    """The line of the log that says why: for a timeout the last progress line
    (`_support.progress`), else the script's own error ("name: ..."), else the last
    exception line, else the last line."""
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no log"
    steps = [x.strip() for x in lines if re.match(r"^\s*\[[^]]+\] \d\d:\d\d:\d\d ", x)]
    if timed_out and steps:
        return f"last step: {steps[-1]}"[:160]
    own = [x for x in lines if x.startswith(f"{Path(script).stem}: ")]
    errors = [x for x in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", x)]
    chosen = own[0] if own else errors[-1] if errors else lines[-1] if lines else "empty log"
    return chosen[:160]


def rows_of(run: Run) -> list[tuple[str, ...]]:
    """The table rows of one run: its figures (a script that stopped early may have written
    some), then one FAILED row if it did not finish."""
    try:
        doc = json.loads(run.json_path.read_text())
    except (OSError, ValueError):
        doc = {"figures": []}
    failed: list[tuple[str, ...]] = []
    if run.exit_code != 0 or not doc["figures"]:
        why = "timed out" if run.exit_code == 124 else f"exit {run.exit_code}"
        if run.exit_code == 0:
            why = "no figures written"
        failed = [
            (f"{run.label} ({run.script})", f"FAILED: {why} after {run.seconds:.0f} s — "
             f"{_why(run.log_path, run.script, run.exit_code == 124)}", "", "", "", "FAILED", "")
        ]  # fmt: skip
    return [
        (
            f"{f['figure']}: {f['what']}",
            f["ours"],
            f["baseline"],
            _ratio(f["ratio"]),
            f["goal"],
            _verdict(f["met"]),
            f["driver_cpu"],
        )
        for f in doc["figures"]
    ] + failed


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    """A markdown table with padded columns, so it reads as text too."""
    cells = [COLUMNS, *[tuple(_cell(c) for c in row) for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
        return out.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render(runs: list[Run], started: str, load_start: str, wall: float) -> str:
    """The whole report: header, table, per-script times, commands."""
    load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    met = missed = failed = 0
    rows: list[tuple[str, ...]] = []
    for run in runs:
        for row in rows_of(run):
            rows.append(row)
            met += row[5] == "met"
            missed += row[5] == "**missed**"
            failed += row[5] == "FAILED"
    out = [
        f"## bench/run_all.sh — {now}",
        "",
        f"git {_git_revision()}; {os.cpu_count()} CPUs; started {started}; wall time "
        f"{wall / 60:.1f} min; load average (1/5/15 min) {load_start} at the start, "
        f"{load_end} at the end. The machine is shared: absolute figures move with the "
        "load, read the ratios (each script runs ours and its baseline in the same run).",
        "",
        markdown_table(rows),
        "",
        f"Goals: {met} met, {missed} missed; {failed} script(s) failed. "
        "Ratio = ours / baseline (for latency, time and memory, lower is better). "
        "Driver CPU = the load generator's CPU (ours / baseline), to show it was not "
        "the bottleneck.",
        "",
        "| script | exit | seconds | load at start | command |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {r.label} | {r.exit_code} | {r.seconds:.0f} | {r.load_at_start} | `{r.command}` |"
        for r in runs
    ]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--started", default="?", help="when the run started")
    parser.add_argument("--load-start", default="?", help="load average when it started")
    parser.add_argument("--wall", type=float, default=0.0, help="the run's seconds")
    args = parser.parse_args()
    text = render(read_manifest(args.manifest), args.started, args.load_start, args.wall)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
