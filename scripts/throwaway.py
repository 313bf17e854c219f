#!/usr/bin/env python3
"""Find or start throwaway PostgreSQL and Redis servers for the test suite.

Standard library only, Python 3.10+.  Usable as a module (tests that need to stop
and restart a server import :func:`start_postgres` / :func:`start_redis`) and as a
command line tool used by ``scripts/test.sh``::

    python scripts/throwaway.py up STATE_DIR    # prints two `export ...` lines
    python scripts/throwaway.py down STATE_DIR  # stops what `up` started, removes STATE_DIR

``up`` writes ``STATE_DIR/state.json`` with the URLs and every server it started;
``down`` stops exactly those servers (never one it did not start) and removes the
directory.  Only the two ``export`` lines go to stdout; diagnostics go to stderr.

How servers are chosen (:func:`find_or_start`):

* database: ``$TEST_DATABASE_URL`` if set; else PostgreSQL on 127.0.0.1:5432 if the
  port answers; else a fresh cluster (``initdb`` + ``pg_ctl``) on a free port.
* Redis: ``$TEST_REDIS_URL`` if set; else 127.0.0.1:6379 if it answers ``PING``;
  else a fresh ``redis-server`` on a free port.

Environment variables:

* ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` -- use these servers as they are.
* ``THROWAWAY_FORCE_START=1`` -- ignore both the variables above and the servers on
  the default ports, and always start fresh throwaway servers.

PostgreSQL refuses to run as root.  When running as root the cluster is created
and run as the ``postgres`` system user if it exists, else as a system user
``chatapi-test`` created with ``useradd -r -M``; the work directory is chowned to
that user and any of its ancestors that the user cannot traverse get ``o+x``.  When
the binaries are missing and we are root, ``apt-get install`` fetches them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0
"""Seconds to wait for a freshly started server to accept connections."""

FALLBACK_PG_USER = "chatapi-test"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
STATE_FILE = "state.json"
# Unix socket paths are limited to ~107 bytes; leave room for "/.s.PGSQL.NNNNN".
_MAX_SOCKDIR_LEN = 80


def log(message: str) -> None:
    """Print a diagnostic line to stderr (stdout is reserved for the CLI's output)."""
    print(f"throwaway: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- network


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if a TCP connection to ``host:port`` succeeds within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return True if a Redis server at ``host:port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            reply = b""
            while b"\r\n" not in reply and len(reply) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+PONG")
    except OSError:
        return False


def _wait_until(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``check()`` until it returns True; raise RuntimeError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


# --------------------------------------------------------------------------- processes


def _is_root() -> bool:
    return os.geteuid() == 0


def _as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` with ``runuser -u USER --`` when a user switch is needed."""
    if user is None:
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


def _run(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 120.0) -> str:
    """Run a command, capturing its output; raise RuntimeError with that output on failure."""
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {shlex.join(argv)}\n{proc.stdout.strip()}"
        )
    return proc.stdout


def _apt_install(package: str) -> None:
    """Install a Debian package (root only); apt's output goes to stderr."""
    log(f"installing {package} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", package],
    ):
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=sys.stderr, check=True)


def _pid_alive(pid: int) -> bool:
    """Return True if ``pid`` exists and is not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _cmdline(pid: int) -> str | None:
    """Return the command line of ``pid`` (None when /proc is unavailable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


# --------------------------------------------------------------------------- server


@dataclass
class Server:
    """A server started by this module.

    ``stop()`` stops it and is idempotent; the data (PostgreSQL's data directory) is
    kept, so ``start_again()`` brings it back on the same port with the same data
    (for fault-injection tests).  ``restart()`` does both.
    """

    kind: str
    """``"postgres"`` or ``"redis"``."""
    port: int
    url: str
    workdir: Path
    pid: int | None = None
    datadir: Path | None = None
    bindir: Path | None = None
    user: str | None = None
    sockdir: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    # ---- lifecycle

    def is_running(self) -> bool:
        """Return True while the server process is alive."""
        if self.kind == "postgres":
            self._refresh_pg_pid()
        if self._proc is not None:
            return self._proc.poll() is None
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (idempotent); its data is kept for :meth:`start_again`.

        ``mode`` is PostgreSQL's shutdown mode (ignored for Redis).  The default,
        ``immediate``, is a crash: with ``synchronous_commit=off`` transactions
        committed within the last ~0.6 s may be lost.  Use ``"fast"`` for a clean
        shutdown that keeps every committed transaction.
        """
        if self.kind == "postgres":
            self._stop_postgres(mode)
        else:
            self._stop_redis()

    def start_again(self) -> None:
        """Start a stopped server again on the same port (and data directory)."""
        if self.is_running():
            return
        if self.kind == "postgres":
            self._start_postgres()
        else:
            self._start_redis()

    def restart(self, mode: str = "immediate") -> None:
        """Stop the server (see :meth:`stop`), then start it again on the same port."""
        self.stop(mode)
        self.start_again()

    # ---- state file round trip

    def to_state(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (for the CLI's state file)."""
        return {
            "kind": self.kind,
            "port": self.port,
            "url": self.url,
            "workdir": str(self.workdir),
            "pid": self.pid,
            "datadir": None if self.datadir is None else str(self.datadir),
            "bindir": None if self.bindir is None else str(self.bindir),
            "user": self.user,
            "sockdir": self.sockdir,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Server:
        """Rebuild a :class:`Server` from :meth:`to_state` output."""

        def opt_path(key: str) -> Path | None:
            value = data.get(key)
            return None if value is None else Path(value)

        return cls(
            kind=str(data["kind"]),
            port=int(data["port"]),
            url=str(data["url"]),
            workdir=Path(data["workdir"]),
            pid=data.get("pid"),
            datadir=opt_path("datadir"),
            bindir=opt_path("bindir"),
            user=data.get("user"),
            sockdir=data.get("sockdir"),
        )

    # ---- PostgreSQL

    def _pg_ctl(self) -> str:
        assert self.bindir is not None
        return str(self.bindir / "pg_ctl")

    def _refresh_pg_pid(self) -> None:
        assert self.datadir is not None
        try:
            self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.pid = None

    def _start_postgres(self) -> None:
        assert self.datadir is not None
        options = (
            f"-p {self.port} -k {shlex.quote(self.sockdir or '')} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        argv = [
            self._pg_ctl(),
            "-D",
            str(self.datadir),
            "-l",
            str(self.workdir / "postgres.log"),
            "-o",
            options,
            "-t",
            str(int(START_TIMEOUT)),
            "-w",
            "start",
        ]
        _run(_as_user(self.user, argv), cwd=self.workdir, timeout=START_TIMEOUT + 10)
        _wait_until(lambda: port_open("127.0.0.1", self.port), f"PostgreSQL on :{self.port}")
        self._refresh_pg_pid()

    def _stop_postgres(self, mode: str) -> None:
        assert self.datadir is not None
        if not (self.datadir / "postmaster.pid").exists():
            self.pid = None
            return
        argv = [self._pg_ctl(), "-D", str(self.datadir), "-m", mode, "-w", "stop"]
        try:
            _run(_as_user(self.user, argv), cwd=self.workdir, timeout=60)
        except RuntimeError:
            if (self.datadir / "postmaster.pid").exists():
                raise
        self.pid = None

    # ---- Redis

    def _start_redis(self) -> None:
        self._proc = _spawn_redis(self.port, self.workdir)
        self.pid = self._proc.pid
        _wait_redis(self._proc, self.port, self.workdir)

    def _stop_redis(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
            self.pid = None
            return
        pid = self.pid
        self.pid = None
        if pid is None or not _pid_alive(pid):
            return
        cmdline = _cmdline(pid)
        if cmdline is not None and "redis-server" not in cmdline:
            log(f"pid {pid} is no longer redis-server ({cmdline!r}); not killing it")
            return
        _terminate_pid(pid)


def _terminate_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- PostgreSQL


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for ``/usr/lib/postgresql/<version>`` directories."""
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (-1,)


def find_pg_bindir() -> Path | None:
    """Locate a directory holding ``initdb`` and ``pg_ctl`` (highest version wins)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent)
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            bindir = Path(out)
            if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
                return bindir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


def _pg_run_user() -> str | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if not _is_root():
        return None
    for name in ("postgres", FALLBACK_PG_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    log(f"creating system user {FALLBACK_PG_USER}")
    _run(["useradd", "-r", "-M", FALLBACK_PG_USER])
    return FALLBACK_PG_USER


def _make_traversable(path: Path, uid: int) -> None:
    """Give ``o+x`` to ancestors of ``path`` that user ``uid`` could not traverse.

    Only directories owned by us are changed; ``o+x`` lets others pass through a
    directory without listing it.
    """
    for parent in path.parents:
        st = parent.stat()
        if st.st_mode & stat.S_IXOTH or st.st_uid == uid:
            continue
        if st.st_uid == os.geteuid():
            log(f"chmod o+x {parent} so uid {uid} can reach {path}")
            parent.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def start_postgres(workdir: Path, port: int | None = None) -> Server:
    """Create a PostgreSQL cluster in ``workdir/pgdata`` and start it on ``port``.

    The cluster uses trust authentication for the ``postgres`` superuser and
    listens on 127.0.0.1 only, with durability settings off for speed.  Returns
    once the server accepts TCP connections.
    """
    bindir = find_pg_bindir()
    if bindir is None and _is_root():
        _apt_install("postgresql")
        bindir = find_pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found")

    workdir = Path(workdir).resolve()
    port = port or free_port()
    user = _pg_run_user()
    datadir = workdir / "pgdata"
    sockdir = workdir / "sock"
    workdir.mkdir(parents=True, exist_ok=True)
    sockdir.mkdir(exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (workdir, sockdir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        _make_traversable(workdir, entry.pw_uid)
    # Too long a socket path makes the postmaster fail: fall back to TCP only.
    sock_option = str(sockdir) if len(str(sockdir)) <= _MAX_SOCKDIR_LEN else ""

    if not (datadir / "PG_VERSION").exists():
        initdb = [
            str(bindir / "initdb"),
            "-D",
            str(datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
        ]
        _run(_as_user(user, initdb), cwd=workdir)

    server = Server(
        kind="postgres",
        port=port,
        url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
        workdir=workdir,
        datadir=datadir,
        bindir=bindir,
        user=user,
        sockdir=sock_option,
    )
    server._start_postgres()
    log(f"started PostgreSQL ({bindir}) on 127.0.0.1:{port} as {user or 'current user'}")
    return server


# --------------------------------------------------------------------------- Redis


def find_redis_server() -> str | None:
    """Return the path of ``redis-server`` if installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in (
        "/usr/bin/redis-server",
        "/usr/local/bin/redis-server",
        "/usr/sbin/redis-server",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _spawn_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Start ``redis-server`` in its own session, logging to ``workdir/redis.log``."""
    binary = find_redis_server()
    if binary is None and _is_root():
        _apt_install("redis-server")
        binary = find_redis_server()
    if binary is None:
        raise RuntimeError("redis-server not found")
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(workdir),
    ]
    with open(workdir / "redis.log", "ab") as logfile:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_redis(proc: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
    """Wait until the Redis server answers PING; fail early if it exits."""

    def ready() -> bool:
        if proc.poll() is not None:
            tail = (workdir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{tail}")
        return redis_ping("127.0.0.1", port)

    try:
        _wait_until(ready, f"Redis on :{port}")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise


def start_redis(workdir: Path, port: int | None = None) -> Server:
    """Start a non-persistent ``redis-server`` on 127.0.0.1:``port`` (free port if None).

    Returns once it answers ``PING``.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    server = Server(kind="redis", port=port, url=f"redis://127.0.0.1:{port}/0", workdir=workdir)
    server._start_redis()
    log(f"started Redis on 127.0.0.1:{port} (pid {server.pid})")
    return server


# --------------------------------------------------------------------------- orchestration


def _force_start() -> bool:
    return os.environ.get("THROWAWAY_FORCE_START", "") not in ("", "0")


def find_or_start(workdir: Path) -> tuple[str, str, list[Server]]:
    """Return ``(database_url, redis_url, servers_started)``.

    Uses ``$TEST_DATABASE_URL`` / ``$TEST_REDIS_URL`` when set, else servers on the
    default local ports, else starts throwaway servers under ``workdir``.  If
    starting the second server fails, the first is stopped before re-raising.
    """
    workdir = Path(workdir)
    force = _force_start()
    started: list[Server] = []
    try:
        db_url = None if force else os.environ.get("TEST_DATABASE_URL") or None
        if db_url:
            log("database: using $TEST_DATABASE_URL")
        elif not force and port_open("127.0.0.1", 5432):
            db_url = DEFAULT_PG_URL
            log("database: using existing PostgreSQL on 127.0.0.1:5432")
        else:
            server = start_postgres(workdir / "postgres")
            started.append(server)
            db_url = server.url

        redis_url = None if force else os.environ.get("TEST_REDIS_URL") or None
        if redis_url:
            log("redis: using $TEST_REDIS_URL")
        elif not force and redis_ping("127.0.0.1", 6379):
            redis_url = DEFAULT_REDIS_URL
            log("redis: using existing Redis on 127.0.0.1:6379")
        else:
            server = start_redis(workdir / "redis")
            started.append(server)
            redis_url = server.url
    except BaseException:
        stop_all(started)
        raise
    return db_url, redis_url, started


def stop_all(servers: Sequence[Server]) -> bool:
    """Stop ``servers`` in reverse start order; return False if any stop failed."""
    ok = True
    for server in reversed(servers):
        try:
            server.stop()
            log(f"stopped {server.kind} on 127.0.0.1:{server.port}")
        except Exception as exc:
            ok = False
            log(f"failed to stop {server.kind} on 127.0.0.1:{server.port}: {exc}")
    return ok


# --------------------------------------------------------------------------- CLI


def cmd_up(state_dir: Path) -> int:
    """``up``: find or start servers, record them, print ``export`` lines."""
    state_dir.mkdir(parents=True, exist_ok=True)
    state_path = state_dir / STATE_FILE
    if state_path.exists():
        log(f"{state_path} already exists; run `down` first")
        return 2
    db_url, redis_url, started = find_or_start(state_dir)
    state = {
        "database_url": db_url,
        "redis_url": redis_url,
        "started": [server.to_state() for server in started],
    }
    try:
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(state_path)
    except BaseException:
        stop_all(started)
        raise
    print(f"export TEST_DATABASE_URL={shlex.quote(db_url)}")
    print(f"export TEST_REDIS_URL={shlex.quote(redis_url)}")
    return 0


def cmd_down(state_dir: Path) -> int:
    """``down``: stop the servers recorded by ``up`` and remove ``state_dir``."""
    if not state_dir.is_dir():
        log(f"{state_dir} does not exist; nothing to do")
        return 0
    state_path = state_dir / STATE_FILE
    ok = True
    if state_path.exists():
        state = json.loads(state_path.read_text())
        ok = stop_all([Server.from_state(item) for item in state.get("started", [])])
    elif not {p.name for p in state_dir.iterdir()} <= {"postgres", "redis", "state.tmp"}:
        log(f"{state_dir} has no {STATE_FILE} and unknown content; not removing it")
        return 1
    if not ok:
        log(f"keeping {state_dir} because a server could not be stopped")
        return 1
    shutil.rmtree(state_dir)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("up", "down"))
    parser.add_argument("state_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return cmd_up(args.state_dir)
        return cmd_down(args.state_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
