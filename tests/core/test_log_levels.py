"""Celery's routine lines (a task sent by beat, received, succeeded) are DEBUG: hidden at
LOG_LEVEL=INFO, shown and labelled debug at DEBUG; Celery's warnings and errors always show."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import orjson
import pytest

from app.core.logging import configure_logging

ROUTINE = {
    "celery.beat": "Scheduler: Sending due task notifications-sweep-due",
    "celery.worker.strategy": "Task notifications.sweep_due[1] received",
    "celery.app.trace": "Task notifications.sweep_due[1] succeeded in 0.01s: 0",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    yield
    configure_logging(os.environ.get("TEST_LOG_LEVEL", "WARNING"), "json")


def logged(capsys: pytest.CaptureFixture[str], level: str) -> list[dict[str, str]]:
    configure_logging(level, "json")  # its handler writes to the (captured) stderr
    for name, message in ROUTINE.items():
        logging.getLogger(name).info(message)
    logging.getLogger("celery.app.trace").error("Task notifications.deliver[2] raised")
    err = capsys.readouterr().err
    return [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_at_info_celerys_routine_lines_are_left_out_and_its_errors_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = logged(capsys, "INFO")
    assert [(r["logger"], r["level"]) for r in records] == [("celery.app.trace", "error")]


def test_at_debug_they_show_labelled_debug(capsys: pytest.CaptureFixture[str]) -> None:
    records = logged(capsys, "DEBUG")
    shown = {r["logger"]: r["level"] for r in records if r["msg"] in ROUTINE.values()}
    assert shown == dict.fromkeys(ROUTINE, "debug")
    assert any(r["level"] == "error" for r in records)
