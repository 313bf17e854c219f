"""The process's SecretBox: SECRET_KEY, or outside production a generated key kept in a file
that every process with the same settings shares."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.compose import build_runtime
from app.core.crypto import SecretBox
from app.core.secret_key import load_secret_box
from tests.conftest import make_settings


def test_secret_key_setting_is_the_key() -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:", SECRET_KEY="k" * 40)
    sealed = load_secret_box(settings).seal("whsec_abc")
    assert SecretBox("k" * 40).open(sealed) == "whsec_abc"


def test_without_secret_key_a_private_key_file_is_made_beside_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path}/chatapi.db", SECRET_KEY=None, ENVIRONMENT="local"
    )
    first = load_secret_box(settings)
    key_file = tmp_path / "chatapi.secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    assert "SECRET_KEY is not set" in caplog.text
    # Another process with the same settings opens what this one sealed.
    assert load_secret_box(settings).open(first.seal("smtp-password")) == "smtp-password"
    runtime = build_runtime(settings, role="api")
    assert runtime.secret_box.open(first.seal("x")) == "x"


def test_secret_key_file_setting_places_the_generated_key(tmp_path: Path) -> None:
    target = tmp_path / "keys" / "relay.key"
    target.parent.mkdir()
    settings = make_settings(
        "postgresql+asyncpg://u@h/db", SECRET_KEY=None, SECRET_KEY_FILE=str(target)
    )
    box = load_secret_box(settings)
    assert target.exists()
    assert SecretBox(target.read_text().strip()).open(box.seal("v")) == "v"


def test_production_without_secret_key_never_generates_one(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/c.db", SECRET_KEY="s" * 40)
    # Settings themselves refuse production without a key; a hand-altered one is refused here.
    settings.ENVIRONMENT = "production"
    settings.SECRET_KEY = None
    with pytest.raises(ValueError, match="SECRET_KEY"):
        load_secret_box(settings)
    assert not (tmp_path / "chatapi.secret").exists()
