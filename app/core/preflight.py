"""Start-up checks every command runs: settings parse, and the servers they name answer."""

from __future__ import annotations

import asyncio

from app.core.config import ConfigError, Settings, load_settings
from app.core.db import Database
from app.core.redis import create_redis

CONNECT_TIMEOUT_SECONDS = 5.0


def preflight(*, need_redis: bool = False) -> Settings:
    """Load settings and check the database (and Redis) answer; raise ConfigError otherwise."""
    settings = load_settings()
    problems: list[str] = []
    if need_redis and not settings.REDIS_URL:
        problems.append(
            "REDIS_URL: required for this command (the embedded mode runs inside serve)"
        )
    problems.extend(asyncio.run(_reachability(settings)))
    if problems:
        raise ConfigError(problems)
    return settings


async def _reachability(settings: Settings) -> list[str]:
    problems = []
    db = Database(settings.DATABASE_URL)
    try:
        await db.ping(CONNECT_TIMEOUT_SECONDS)
    except Exception as exc:
        problems.append(f"DATABASE_URL: cannot connect ({_reason(exc)})")
    finally:
        await db.dispose()
    if settings.REDIS_URL:
        redis = create_redis(settings.REDIS_URL)
        try:
            await asyncio.wait_for(redis.ping(), CONNECT_TIMEOUT_SECONDS)
        except Exception as exc:
            problems.append(f"REDIS_URL: cannot connect ({_reason(exc)})")
        finally:
            await redis.aclose()
    return problems


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
