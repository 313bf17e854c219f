"""Logging: one JSON object per line for machines, readable lines for people.

LOG_FORMAT=auto (the default) picks readable lines when stderr is a terminal and JSON
everywhere else, so pipes, files and container log drivers always get JSON.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import orjson

# uvicorn's `color_message` duplicates the message with ANSI colour codes: never an extra.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
# WebSocket clients may authenticate with ?api_key=…, which servers echo into access logs.
#: Loggers that write SQL parameters or rows at DEBUG (aiosqlite: "executing <the call with
#: its parameters>", "operation … completed" with the rows).
DRIVER_LOGGERS = ("aiosqlite",)
_SECRET_QUERY = re.compile(r"(api_key=)[^&\s\"']+", re.IGNORECASE)
# Celery logs each task beat sends, each task a worker receives and each one that succeeds
# at INFO, with the message's data: with sweeps every few seconds that was most of the log,
# burying the requests. Routine, so shown only at LOG_LEVEL=DEBUG; their warnings and
# errors (a failed task, an unreachable broker) show at every level.
CELERY_ROUTINE_LOGGERS = (
    "celery.beat",  # "Scheduler: Sending due task …"
    "celery.worker.strategy",  # "Task …[id] received"
    "celery.app.trace",  # "Task …[id] succeeded in …s"
    "celery.worker.request",  # "Discarding revoked task" (an expired, redundant sweep)
)


class RedactSecrets(logging.Filter):
    """Blank out API keys that appear in query strings of any log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message.lower():
            record.msg = _SECRET_QUERY.sub(r"\1[redacted]", message)
            record.args = None
            record.__dict__.pop("color_message", None)
        return True


class _InfoAsDebug(logging.Filter):
    """Label a routine INFO record as the DEBUG line it is (LOG_LEVEL=DEBUG only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


_INFO_AS_DEBUG = _InfoAsDebug()


def _quiet_celery(level: str) -> None:
    # Levels on the loggers, not a filter on the handler: below DEBUG, Celery checks
    # isEnabledFor(INFO) and does not even build the records.
    debug = logging.getLevelName(level) == logging.DEBUG
    for name in CELERY_ROUTINE_LOGGERS:
        logger = logging.getLogger(name)
        if debug:
            logger.setLevel(logging.NOTSET)
            logger.addFilter(_INFO_AS_DEBUG)
        else:
            logger.setLevel(logging.WARNING)
            logger.removeFilter(_INFO_AS_DEBUG)


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra=` fields as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...` for a person reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = self.formatTime(record, "%Y-%m-%d %H:%M:%S") + f".{int(record.msecs):03d}"
        parts = [when, f"{record.levelname:<7}", record.name, record.getMessage()]
        parts += [
            f"{key}={_text_value(value)}"
            for key, value in record.__dict__.items()
            if key not in _RESERVED and not key.startswith("_")
        ]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text_value(value: Any) -> str:
    text = str(value)
    # Quote what would otherwise split into several key=value pairs for the reader.
    if not text or any(c.isspace() or c in '"=' for c in text):
        return orjson.dumps(text).decode()
    return text


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`json` or `text`: `auto` is text only when `stream` is a terminal."""
    if fmt != "auto":
        return fmt
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if resolve_format(fmt, sys.stderr) == "json" else TextFormatter()
    )
    # UTC in both formats: one clock for every process and host.
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log would duplicate our request line.
    logging.getLogger("uvicorn.access").disabled = True
    # Drivers whose DEBUG lines print each statement's parameters and results (sealed
    # secrets, bcrypt hashes): LOG_LEVEL=DEBUG must not turn them on. (SQLAlchemy keeps its
    # own loggers at WARNING unless asked, and its engines hide parameters: app/core/db.py.)
    for name in DRIVER_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
    _quiet_celery(level)
