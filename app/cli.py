"""The `chatapi` command: serve, worker, beat, migrate (API.md §1)."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from app.core.config import ConfigError, Settings

cli = typer.Typer(help="ChatAPI: real-time messaging and notification relay.", no_args_is_help=True)
EXIT_CONFIG = 2
EXIT_CANNOT_LISTEN = 1


def _fail(problems: list[str]) -> NoReturn:
    for line in problems:
        typer.echo(f"config error: {line}", err=True)
    raise typer.Exit(EXIT_CONFIG)


def _preflight(*, need_redis: bool = False) -> Settings:
    from app.core.preflight import preflight

    try:
        return preflight(need_redis=need_redis)
    except ConfigError as exc:
        _fail(exc.problems)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="API processes (needs REDIS_URL).")] = 1,
) -> None:
    """Migrate the database, then run the API (HTTP, WebSocket, Socket.IO)."""
    from contextlib import ExitStack

    from app.core.listen import CannotListen, reserved
    from app.observability.multiproc import ensure_multiproc_dir

    with ExitStack() as address:
        # First the address (held while the database is checked and migrated): a port in
        # use is one line before anything touched the database or started a worker.
        try:
            address.enter_context(reserved(host, port))
        except CannotListen as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_CANNOT_LISTEN) from None
        # Before anything imports prometheus-client: every worker process writes its
        # metrics where /metrics (served by any of them) reads them all.
        ensure_multiproc_dir()
        settings = _preflight()
        if workers > 1 and settings.embedded:
            _fail(["--workers > 1 needs REDIS_URL: processes share events, tasks and limits there"])
        from app.core.migrations import upgrade

        upgrade(settings.DATABASE_URL)
    import uvicorn

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        ws_max_size=settings.MAX_WS_FRAME_BYTES,
        ws_per_message_deflate=settings.WS_PER_MESSAGE_DEFLATE,
    )


@cli.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Task threads.")] = 8,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a Celery worker on the Redis broker."""
    from app.observability.multiproc import ensure_multiproc_dir

    ensure_multiproc_dir()
    settings = _preflight(need_redis=True)
    from app.compose import build_runtime
    from app.worker.process import run_worker

    run_worker(
        settings,
        lambda: build_runtime(settings, role="worker"),
        concurrency=concurrency,
        loglevel=loglevel,
    )


@cli.command()
def beat(loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO") -> None:
    """Run the Celery beat scheduler (room sweeps, retry sweeps, heartbeat)."""
    settings = _preflight(need_redis=True)
    from app.worker.process import run_beat

    run_beat(settings, loglevel=loglevel)


@cli.command()
def migrate() -> None:
    """Apply every database migration (alembic upgrade head)."""
    settings = _preflight()
    from app.core.migrations import upgrade

    upgrade(settings.DATABASE_URL)
    typer.echo("database is at head")


clients_cli = typer.Typer(help="Manage clients (tenants).", no_args_is_help=True)
cli.add_typer(clients_cli, name="clients")


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Argument(help="The client's display name.")],
    slug: Annotated[str | None, typer.Option(help="URL slug (default: from the name).")] = None,
) -> None:
    """Create a client and print it with its master key (shown this once) as JSON."""
    import asyncio

    import orjson

    from app.core.errors import AppError

    settings = _preflight()
    from app.core.migrations import upgrade
    from app.tenants.commands import create_client

    upgrade(settings.DATABASE_URL)
    try:
        created = asyncio.run(create_client(settings, name, slug))
    except AppError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    typer.echo(orjson.dumps(created).decode())


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="chatapi")


if __name__ == "__main__":
    main()
