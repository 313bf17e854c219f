"""Configuration: defaults, parsing, and start-up refusing bad settings with clear lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import DEFAULT_DATABASE_URL, ConfigError, Settings, load_settings


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _clean_env(**values: str) -> dict[str, str]:
    import os

    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    return keep | values


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DATABASE_URL", "REDIS_URL", "POSTGRES_SERVER"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.DATABASE_URL == DEFAULT_DATABASE_URL
    assert settings.embedded
    assert settings.DELIVERY_RETRY_SCHEDULE == [5, 30, 120, 600, 1800, 3600, 10800]
    assert settings.delivery_attempt_limit == 8


def test_postgres_parts_build_the_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        POSTGRES_SERVER="db",
        POSTGRES_USER="u",
        POSTGRES_PASSWORD="p",
        POSTGRES_DB="chat",
        POSTGRES_PORT=5433,
    )
    assert settings.DATABASE_URL == "postgresql+asyncpg://u:p@db:5433/chat"


def test_retry_schedule_is_read_from_comma_separated_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_RETRY_SCHEDULE", "1, 2,3")
    assert load_settings().DELIVERY_RETRY_SCHEDULE == [1, 2, 3]


def test_smtp_allowed_hosts_are_read_from_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SMTP_ALLOWED_HOSTS", " Mailpit , *.Relay.Example.,10.0.0.0/8,[::1]")
    assert load_settings().SMTP_ALLOWED_HOSTS == ["mailpit", "*.relay.example", "10.0.0.0/8", "::1"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL: unsupported scheme 'mysql'"),
        ({"DELIVERY_RETRY_SCHEDULE": "5,soon"}, "DELIVERY_RETRY_SCHEDULE: must be comma-separated"),
        ({"DELIVERY_RETRY_SCHEDULE": "5,-1"}, "DELIVERY_RETRY_SCHEDULE: every delay must be"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL: must start with redis://"),
        ({"ENVIRONMENT": "production"}, "SECRET_KEY: required when ENVIRONMENT=production"),
        (
            {"ENVIRONMENT": "production", "SECRET_KEY": "changethis"},
            "SECRET_KEY: too weak for production",
        ),
        (
            {"TASK_TIMEOUT_SECONDS": "60", "INBOUND_LEASE_SECONDS": "60"},
            "INBOUND_LEASE_SECONDS: must exceed TASK_TIMEOUT_SECONDS (60.0 s)",
        ),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT: Input should be 'local', 'test' or"),
        (
            {"SMTP_ALLOWED_HOSTS": "smtp.example.com,mail server"},
            "SMTP_ALLOWED_HOSTS: 'mail server' is not a host name",
        ),
    ],
)
def test_bad_settings_are_reported_one_line_each(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(line.startswith(expected) for line in info.value.problems), info.value.problems


def test_several_problems_are_all_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x/y")
    monkeypatch.setenv("DELIVERY_RETRY_SCHEDULE", "later")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert len(info.value.problems) == 2


@pytest.mark.parametrize("command", ["serve", "migrate", "worker", "beat"])
def test_cli_exits_nonzero_with_a_clear_line_on_bad_database_url(
    tmp_path: Path, command: str
) -> None:
    result = _run_cli([command], _clean_env(DATABASE_URL="mysql://x/y"), tmp_path)
    assert result.returncode == 2
    assert "config error: DATABASE_URL: unsupported scheme 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_exits_nonzero_when_the_database_does_not_answer(tmp_path: Path) -> None:
    from tests.support.processes import free_port

    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    result = _run_cli(["serve"], _clean_env(DATABASE_URL=url), tmp_path)
    assert result.returncode == 2
    assert "config error: DATABASE_URL: cannot connect" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_a_weak_secret_at_startup(tmp_path: Path) -> None:
    env = _clean_env(ENVIRONMENT="production", SECRET_KEY="short")
    result = _run_cli(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert "config error: SECRET_KEY: too weak for production" in result.stderr


def test_worker_without_redis_says_it_needs_redis(tmp_path: Path) -> None:
    result = _run_cli(["worker"], _clean_env(), tmp_path)
    assert result.returncode == 2
    assert "config error: REDIS_URL: required for this command" in result.stderr


def test_serve_with_several_workers_needs_redis(tmp_path: Path) -> None:
    result = _run_cli(["serve", "--workers", "2"], _clean_env(), tmp_path)
    assert result.returncode == 2
    assert "--workers > 1 needs REDIS_URL" in result.stderr
