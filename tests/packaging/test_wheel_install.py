"""The wheel a user would install: built from the checkout, installed into a fresh virtualenv
outside it, and run from an empty folder, as `pip install chatapi && chatapi serve` would.

`pip install .`, `pip install git+…` and `pipx install` all build this wheel, so everything
the service reads at run time (migrations, the demo's files, the API docs' assets) must be
inside it: nothing here can see the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, wait_until

CHECKOUT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600
READY_TIMEOUT = 60


def _run(args: list[str | Path], cwd: Path) -> None:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`: the sdist, then the wheel built from that sdist (not the tree)."""
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", dist, CHECKOUT], dist)
    (built,) = dist.glob("chatapi-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv (in a temporary folder, outside the checkout) with the wheel."""
    venv = tmp_path_factory.mktemp("venv")
    # The tests' own pip installs into it (no ensurepip), without byte-compiling: the same
    # files, a good deal sooner.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], venv)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile", wheel],
        venv,
    )
    return venv


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chatapi serve` of the installed wheel, from an empty folder, with the demo on."""
    workdir = tmp_path_factory.mktemp("empty")
    # Nothing of the checkout or of the tests' settings: only what a shell would have.
    env = {
        "PATH": f"{installed / 'bin'}{os.pathsep}/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": "C.UTF-8",
        "DEMO_ENABLED": "true",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = workdir.parent / f"{workdir.name}-serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(installed / "bin" / "chatapi"), "serve", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def ready() -> bool:
                assert proc.poll() is None, f"serve exited:\n{log_path.read_text()}"
                try:
                    return httpx.get(f"{base}/health/ready", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(ready, READY_TIMEOUT, "the installed chatapi to be ready", interval=0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert (workdir / "chatapi.db").is_file(), "the SQLite file is made in the working folder"


@pytest.mark.slow
def test_the_wheel_carries_migrations_and_the_demo(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "app/migrations/env.py" in names
    assert "app/migrations/script.py.mako" in names
    assert any(n.startswith("app/migrations/versions/0001_") for n in names)
    assert {"app/demo/static/index.html", "app/demo/static/app.js"} <= names
    assert "app/demo/static/vendor/socket.io.min.js" in names
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))
    )
    assert b"License-Expression: MIT" in metadata
    assert b"Classifier: Framework :: FastAPI" in metadata
    assert b"Description-Content-Type: text/markdown" in metadata


@pytest.mark.slow
def test_the_installed_wheel_serves_api_and_demo_from_an_empty_folder(served: str) -> None:
    assert httpx.get(f"{served}/health/ready").json()["checks"]["database"] == "ok"
    page = httpx.get(f"{served}/demo")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "/demo/static/app.js" in page.text
    script = httpx.get(f"{served}/demo/static/vendor/socket.io.min.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    schema = httpx.get(f"{served}/api/v1/openapi.json")
    assert schema.status_code == 200
    # The API docs' files come with the installed dependencies too (app/core/docs.py).
    for asset in ("swagger-ui-bundle.js", "redoc.standalone.js"):
        response = httpx.get(f"{served}/docs/assets/{asset}")
        assert response.status_code == 200, asset
        assert "javascript" in response.headers["content-type"]
