"""docker-compose.yml parses and every service's command is a real `chatapi` command."""

from __future__ import annotations

from pathlib import Path

import yaml

from app.cli import cli


def _cli_commands() -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands}


def test_compose_services_run_existing_cli_commands(repo_root: Path) -> None:
    compose = yaml.safe_load((repo_root / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "beat", "db", "redis", "mailpit"} <= set(services)
    for name in ("api", "worker", "beat"):
        command = services[name]["command"]
        assert command[0] == "chatapi", name
        assert command[1] in _cli_commands(), f"{name}: {command}"
    for name in ("api", "db", "redis"):
        assert "healthcheck" in services[name], name


def test_env_example_lists_every_setting(repo_root: Path) -> None:
    from app.core.config import Settings

    text = (repo_root / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"{name}=" not in text]
    assert missing == []
