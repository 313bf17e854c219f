"""The deploy files: docker-compose.yml (validated by the Compose CLI when present), its
Prometheus config, the Dockerfile (hadolint) and the compose instructions of the README and
docs/operations.md."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import cli
from app.main import create_app
from tests.channels.test_email import SmtpHost, start
from tests.conftest import app_client, make_settings
from tests.support.api import Api


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


# --- docker compose, Prometheus, the image (issue 23, point 6) ---------------------------

COMPOSE_ENV = {"SECRET_KEY": "s" * 48, "ADMIN_API_KEY": "a" * 48}


def _compose(repo_root: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((repo_root / "docker-compose.yml").read_text()))


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_prometheus_scrapes_the_api_and_the_worker(repo_root: Path) -> None:
    services = _compose(repo_root)["services"]
    port = int(_env(services["worker"]).get("WORKER_METRICS_PORT", "0"))
    # The worker counts deliveries, retries and dead letters: without its port, invisible.
    assert port > 0
    prometheus = yaml.safe_load((repo_root / "deploy" / "prometheus.yml").read_text())
    targets = {
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"api:8000", f"worker:{port}"} <= targets


def _dockerfile(repo_root: Path) -> list[str]:
    return (repo_root / "Dockerfile").read_text().splitlines()


def test_single_container_keeps_its_database_in_a_named_volume(repo_root: Path) -> None:
    compose = _compose(repo_root)
    single = compose["services"]["single"]
    assert single["profiles"] == ["single"]  # never started by a plain `up`
    assert single["command"][:2] == ["chatapi", "serve"]
    env = _env(single)
    assert "DATABASE_URL" not in env and "REDIS_URL" not in env  # embedded: SQLite
    [mount] = single["volumes"]
    volume, data_dir = mount.split(":")
    assert volume in compose["volumes"]
    lines = _dockerfile(repo_root)
    # The default SQLite file (./chatapi.db) and its generated key land in the volume: the
    # image runs in that directory and declares it a volume.
    assert [line for line in lines if line.startswith("WORKDIR")][-1] == f"WORKDIR {data_dir}"
    assert f'VOLUME ["{data_dir}"]' in lines


def test_readme_names_the_first_tenant_command_and_the_minimum_compose_version(
    repo_root: Path,
) -> None:
    readme = (repo_root / "README.md").read_text()
    assert 'docker compose exec api chatapi clients create "Acme Shop"' in readme
    assert "clients" in {g.name for g in cli.registered_groups}
    assert "Docker Compose v2.24 or newer" in readme


def test_readme_states_the_mailpit_smtp_setting_and_that_rate_limits_fail_open(
    repo_root: Path,
) -> None:
    # The details are in docs/operations.md and docs/errors.md (checked below and by the
    # docs tests); the README itself says both rules in a sentence and links there.
    readme = " ".join((repo_root / "README.md").read_text().split())
    assert "`SMTP_ALLOW_PRIVATE_TARGETS=true SMTP_ALLOWED_HOSTS=mailpit docker compose up" in readme
    assert "docs/operations.md#deploying-with-docker-compose" in readme
    assert "rate limits fail open" in readme
    assert "docs/errors.md#rate-limits" in readme


@pytest.fixture
def smtp_hosts() -> Iterator[list[SmtpHost]]:
    hosts: list[SmtpHost] = []
    yield hosts
    for host in hosts:
        host.stop()


def _docs_mailpit_body(repo_root: Path) -> dict[str, Any]:
    page = (repo_root / "docs" / "operations.md").read_text()
    found = re.search(r"-d '(\{\"host\":\"mailpit\"[^']*\})'", page)
    assert found, "docs/operations.md: the Mailpit PUT /email-config body"
    return dict(json.loads(found.group(1)))


def _docs_mailpit_settings(repo_root: Path) -> dict[str, str]:
    page = " ".join((repo_root / "docs" / "operations.md").read_text().split())
    found = re.search(r"`(SMTP_ALLOW_PRIVATE_TARGETS=\S+) (SMTP_ALLOWED_HOSTS=\S+)`", page)
    assert found, "docs/operations.md: the settings that let tenants send through Mailpit"
    return dict(pair.split("=", 1) for pair in found.groups())


@pytest.fixture
async def mailpit_api(db_url: str, repo_root: Path) -> AsyncIterator[Api]:
    """The API of a deployment started as the page says for Mailpit, with this test's
    SMTP server (on 127.0.0.1) standing in for the `mailpit` host."""
    documented = _docs_mailpit_settings(repo_root)
    assert documented == {"SMTP_ALLOW_PRIVATE_TARGETS": "true", "SMTP_ALLOWED_HOSTS": "mailpit"}
    settings = make_settings(
        db_url, SMTP_ALLOW_PRIVATE_TARGETS=True, SMTP_ALLOWED_HOSTS="127.0.0.1"
    )
    app = create_app(settings, run_embedded_worker=False)
    async for http in app_client(app):
        yield Api(http, app=app)


async def test_documented_mailpit_config_sends_where_the_default_starttls_fails(
    mailpit_api: Api, repo_root: Path, smtp_hosts: list[SmtpHost]
) -> None:
    api = mailpit_api
    body = _docs_mailpit_body(repo_root)
    mailpit = _compose(repo_root)["services"]["mailpit"]
    assert (body["host"], f"{body['port']}:{body['port']}") == ("mailpit", mailpit["ports"][0])
    # Mailpit is plain SMTP without STARTTLS, like this aiosmtpd: the documented config, pointed
    # at it, sends; the default security (starttls) does not.
    host = start(smtp_hosts)
    tenant = await api.tenant()
    local = {**body, "host": "127.0.0.1", "port": host.port}
    for config, ok in (({k: v for k, v in local.items() if k != "security"}, False), (local, True)):
        r = await api.http.put("/api/v1/email-config", json=config, headers=tenant.auth)
        assert r.status_code == 200, r.text
        r = await api.http.post(
            "/api/v1/email-config/test", json={"to": "you@example.com"}, headers=tenant.auth
        )
        assert r.status_code == 200 and r.json()["ok"] is ok, r.text
    assert len(host.recorder.messages) == 1


def _tool(version_arg: str, *candidates: list[str]) -> list[str] | None:
    for command in candidates:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, version_arg], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return command
    if os.environ.get("CI") == "true":
        pytest.fail(f"{candidates[0][-1]} is missing: scripts/deploy_tools.sh installs it")
    return None


def _compose_cli() -> list[str]:
    bin_dir = Path(sys.executable).parent
    # The Docker CLI's plugin, else the standalone binary scripts/deploy_tools.sh installs.
    command = _tool("version", ["docker", "compose"], [str(bin_dir / "docker-compose")])
    if command is None:
        pytest.skip("no Docker Compose v2 CLI (scripts/deploy_tools.sh installs one)")
    return command


def test_docker_compose_config_validates(repo_root: Path) -> None:
    command = _compose_cli()
    env = {**os.environ, **COMPOSE_ENV}
    # No Docker engine needed: `config` loads, interpolates and validates the file.
    for profile in ([], ["--profile", "monitoring", "--profile", "single"]):
        done = subprocess.run(
            [*command, *profile, "config", "--format", "json"],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)["services"]
    assert resolved["worker"]["environment"]["WORKER_METRICS_PORT"] == "9100"
    assert resolved["single"]["volumes"][0]["source"] == "chatapi-data"
    # Without a secret the file refuses to start rather than run on an empty one.
    bare = {k: v for k, v in env.items() if k != "SECRET_KEY"}
    done = subprocess.run(
        [*command, "config", "-q"], cwd=repo_root, env=bare, capture_output=True, text=True
    )
    assert done.returncode != 0 and "SECRET_KEY" in done.stderr


def test_dockerfile_passes_hadolint(repo_root: Path) -> None:
    bin_dir = Path(sys.executable).parent
    command = _tool("--version", ["hadolint"], [str(bin_dir / "hadolint")])
    if command is None:
        pytest.skip("no hadolint (scripts/deploy_tools.sh installs it)")
    done = subprocess.run(
        [*command, "--no-color", "Dockerfile"], cwd=repo_root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
