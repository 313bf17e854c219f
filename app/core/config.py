"""Settings from the environment and `.env` (API.md §1), validated once at start-up."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.host_list import allow_list_entry

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./chatapi.db"
SUPPORTED_DB_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
# Values people copy from examples; production must never run on them.
WEAK_SECRETS = frozenset({"changethis", "changeme", "secret", "password", "dev", "test"})
MIN_SECRET_LENGTH = 32
#: Each per-client limit's deployment default → the setting capping what a client may set.
RATE_LIMIT_CAPS = {
    "RATE_LIMIT_REQUESTS_PER_MINUTE": "RATE_LIMIT_MAX_REQUESTS_PER_MINUTE",
    "RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE": "RATE_LIMIT_MAX_CLIENT_REQUESTS_PER_MINUTE",
    "RATE_LIMIT_EMAILS_PER_HOUR": "RATE_LIMIT_MAX_EMAILS_PER_HOUR",
    "RATE_LIMIT_SMS_PER_HOUR": "RATE_LIMIT_MAX_SMS_PER_HOUR",
    "RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT": "RATE_LIMIT_MAX_WEBHOOKS_PER_SECOND_PER_ENDPOINT",
}


class Settings(BaseSettings):
    """Every knob of the service; see `.env.example` for one line on each."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", validate_default=True)

    ENVIRONMENT: Literal["local", "test", "production"] = "local"
    DATABASE_URL: str = ""
    POSTGRES_SERVER: str = ""
    POSTGRES_PORT: int = 5432
    POSTGRES_USER: str = "postgres"
    POSTGRES_PASSWORD: str = ""
    POSTGRES_DB: str = "chatapi"
    REDIS_URL: str | None = None
    REDIS_KEY_PREFIX: str = "chatapi:"
    ADMIN_API_KEY: str | None = None
    SECRET_KEY: str | None = None
    SENTRY_DSN: str | None = None
    ROOM_SWEEP_INTERVAL_SECONDS: float = Field(default=300, gt=0)
    DELIVERY_RETRY_SCHEDULE: Annotated[list[int], NoDecode] = [5, 30, 120, 600, 1800, 3600, 10800]
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False
    # A PEM file of extra CA certificates trusted (beside certifi's roots) for HTTPS to push
    # services and the FCM API: a self-hosted push service or a TLS-inspecting proxy.
    PROVIDER_CA_FILE: str | None = None
    # An endpoint failing every attempt this long, with at least this many failures, is disabled.
    WEBHOOK_DISABLE_AFTER_SECONDS: float = Field(default=432_000, gt=0)
    WEBHOOK_DISABLE_MIN_FAILURES: int = Field(default=5, ge=1)
    # Tenants' SMTP hosts get the webhook address policy: private addresses only when allowed
    # (a self-hosted relay), link-local and metadata never; when the list is set, only the
    # hosts it names (names, *.domain, IP addresses or networks).
    SMTP_ALLOW_PRIVATE_TARGETS: bool = False
    SMTP_ALLOWED_HOSTS: Annotated[list[str], NoDecode] = []
    # Bound on one `POST /email-config/test` (connect, TLS, AUTH and send, per server).
    EMAIL_TEST_TIMEOUT_SECONDS: float = Field(default=15, gt=0)
    # Outside production without SECRET_KEY: where the generated key is kept (empty: beside
    # the SQLite database file, else `./chatapi.secret`).
    SECRET_KEY_FILE: str = ""
    # The relay (API.md §6): how long a worker holds a claimed delivery (must exceed the
    # longest channel timeout), how often beat rings due deliveries, retention.
    DELIVERY_LEASE_SECONDS: float = Field(default=60, gt=0)
    DELIVERY_SWEEP_INTERVAL_SECONDS: float = Field(default=2, gt=0)
    ATTEMPT_RETENTION_DAYS: int = Field(default=30, gt=0)
    WEBSOCKET_PARK_EXPIRY_SECONDS: float = Field(default=7 * 86400, gt=0)
    # The in-app inbox (API.md §6b): items older than this are purged by beat.
    INBOX_RETENTION_DAYS: int = Field(default=90, gt=0)
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=15, gt=0)
    SMTP_TIMEOUT_SECONDS: float = Field(default=30, gt=0)
    WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT: int = Field(default=4, gt=0)
    MAX_REQUEST_BODY_BYTES: int = Field(default=1_048_576, gt=0)
    MAX_MESSAGE_BYTES: int = Field(default=65_536, gt=0)
    # One send's content times its recipients (each delivery carries its channel's content):
    # 256 MiB lets the largest body (1 MiB) reach 256 recipients and a 4 KB notification all
    # 10,000, and refuses 600 KB x 10,000 (6 GB of work from one request). Above: 413.
    NOTIFICATION_MAX_TOTAL_BYTES: int = Field(default=268_435_456, gt=0)
    MAX_WS_FRAME_BYTES: int = Field(default=65_536, gt=0)
    # permessage-deflate costs a zlib stream per connection (~46 KB, kept while idle) and a
    # compression per frame per connection; events are small JSON. Off, as in Node socket.io.
    WS_PER_MESSAGE_DEFLATE: bool = False
    PRESENCE_MAX_ROOM_MEMBERS: int = Field(default=100, ge=0)
    KEY_RECHECK_INTERVAL_SECONDS: float = Field(default=30, gt=0)
    ROOM_MEMBER_IDS_MAX: int = Field(default=100, ge=0)
    ROOM_SWEEP_BATCH_SIZE: int = Field(default=1000, gt=0)
    HEARTBEAT_INTERVAL_SECONDS: float = Field(default=30, gt=0)
    BCRYPT_ROUNDS: int = Field(default=12, ge=4, le=16)
    # Devices a user may hold keys on at once; a login on one more revokes the least
    # recently used device's keys.
    MAX_DEVICES_PER_USER: int = Field(default=10, ge=1, le=1000)
    # How long a connect token (POST /auth/connect-token) may open its one socket.
    CONNECT_TOKEN_TTL_SECONDS: int = Field(default=300, ge=1, le=86_400)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # auto: readable lines when stderr is a terminal, JSON otherwise (pipes, files, docker).
    LOG_FORMAT: Literal["auto", "json", "text"] = "auto"
    # Inbound webhooks (/webhooks/{client_slug}/{name}): largest body accepted, how far a
    # signature's timestamp may be from now, and how long a rotated-out secret still verifies.
    INBOUND_MAX_BODY_BYTES: int = Field(default=262_144, gt=0)
    INBOUND_SIGNATURE_TOLERANCE_SECONDS: int = Field(default=300, gt=0)
    INBOUND_SECRET_GRACE_SECONDS: int = Field(default=86_400, ge=0)
    # How long a worker holds a claimed inbound event before the sweep may hand it to another
    # (a killed worker's event waits this long); must exceed TASK_TIMEOUT_SECONDS.
    INBOUND_LEASE_SECONDS: float = Field(default=330, gt=0)
    # Inbound templates render in child processes with these limits (a render past them
    # fails its event and its process is killed and replaced); how many per process. The
    # memory is the process's address space (~30 MB of it Python and Jinja2).
    TEMPLATE_RENDER_TIMEOUT_SECONDS: float = Field(default=5, gt=0, le=60)
    TEMPLATE_RENDER_MEMORY_MB: int = Field(default=256, ge=64)
    TEMPLATE_RENDER_WORKERS: int = Field(default=2, ge=1, le=32)
    # Upper bound on every call a Celery task makes into the async runtime.
    TASK_TIMEOUT_SECONDS: float = Field(default=300, gt=0)
    # More modules of Celery tasks every process registers (plugins; the tests' probes).
    EXTRA_TASK_MODULES: Annotated[list[str], NoDecode] = []
    # Rate limits (API.md §8): deployment defaults; a client overrides them with
    # PATCH /clients/me {"settings": {"rate_limits": {...}}}. Counted in Redis when
    # REDIS_URL is set.
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_REQUESTS_PER_MINUTE: int = Field(default=1200, gt=0)
    RATE_LIMIT_CLIENT_REQUESTS_PER_MINUTE: int = Field(default=6000, gt=0)
    RATE_LIMIT_EMAILS_PER_HOUR: int = Field(default=1000, gt=0)
    # SMS deliveries per hour per client (each one costs the tenant money at its provider).
    RATE_LIMIT_SMS_PER_HOUR: int = Field(default=1000, gt=0)
    RATE_LIMIT_WEBHOOKS_PER_SECOND_PER_ENDPOINT: int = Field(default=20, gt=0)
    RATE_LIMIT_INBOUND_PER_MINUTE: int = Field(default=600, gt=0)
    # Requests to an inbound hook that fail verification (bad or no signature, unknown URL)
    # have their own, smaller budgets, per source address and per hook, so a flood of them
    # never spends the signed sender's RATE_LIMIT_INBOUND_PER_MINUTE.
    RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE: int = Field(default=120, gt=0)
    RATE_LIMIT_INBOUND_UNVERIFIED_PER_MINUTE_PER_ADDRESS: int = Field(default=30, gt=0)
    # Verified delivery-event requests (POST /provider-events/...) per minute per tenant:
    # a bulk send's events arrive in bursts, and providers retry a 429 later.
    RATE_LIMIT_PROVIDER_EVENTS_PER_MINUTE: int = Field(default=6000, gt=0)
    # The most a client may set each of its limits to by itself (PATCH /clients/me); unset:
    # the deployment default above, so a client can lower its limits but only the operator
    # (PATCH /clients/{id} with the admin key) can raise them.
    RATE_LIMIT_MAX_REQUESTS_PER_MINUTE: int | None = Field(default=None, gt=0)
    RATE_LIMIT_MAX_CLIENT_REQUESTS_PER_MINUTE: int | None = Field(default=None, gt=0)
    RATE_LIMIT_MAX_EMAILS_PER_HOUR: int | None = Field(default=None, gt=0)
    RATE_LIMIT_MAX_SMS_PER_HOUR: int | None = Field(default=None, gt=0)
    RATE_LIMIT_MAX_WEBHOOKS_PER_SECOND_PER_ENDPOINT: int | None = Field(default=None, gt=0)
    # /health/ready reports "degraded" (still 200) when the oldest due delivery waited longer.
    QUEUE_DEGRADED_AGE_SECONDS: float = Field(default=300, gt=0)
    # `chatapi worker`: serve its Prometheus metrics on this port (0: off).
    WORKER_METRICS_PORT: int = Field(default=0, ge=0, le=65535)
    # The origin (and path prefix) the API is reached at from outside, e.g.
    # https://chat.example.com: the base of absolute URLs in answers (an inbound hook's `url`).
    # Unset: each request's own base URL (behind a proxy: as X-Forwarded-* from a trusted
    # peer tell it, see FORWARDED_ALLOW_IPS).
    PUBLIC_BASE_URL: str | None = None
    # The browser demo (app/demo/static, docs/demo.md): served at /demo only when on.
    # It hands out user keys of the demo client to anyone who opens the page, so it is off
    # unless asked for. Its client is the one with this slug (made on first use if absent);
    # logins are limited per caller address (each costs a bcrypt hash).
    DEMO_ENABLED: bool = False
    DEMO_CLIENT_SLUG: str = Field(default="demo", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    DEMO_LOGINS_PER_MINUTE: int = Field(default=30, gt=0)
    # The demo's files; empty: the copy inside the installed package (app/demo/static).
    DEMO_DIR: str = ""

    @field_validator(
        "REDIS_URL",
        "ADMIN_API_KEY",
        "SECRET_KEY",
        "SENTRY_DSN",
        *RATE_LIMIT_CAPS.values(),
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("DELIVERY_RETRY_SCHEDULE", mode="before")
    @classmethod
    def _parse_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            if not parts:
                raise ValueError("must list at least one delay in seconds, e.g. 5,30,120")
            try:
                delays = [int(p) for p in parts]
            except ValueError:
                raise ValueError(f"must be comma-separated whole seconds, got {value!r}") from None
            value = delays
        if isinstance(value, list) and any(int(v) <= 0 for v in value):
            raise ValueError("every delay must be a positive number of seconds")
        return value

    @field_validator("EXTRA_TASK_MODULES", mode="before")
    @classmethod
    def _parse_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("SMTP_ALLOWED_HOSTS", mode="before")
    @classmethod
    def _parse_smtp_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p for p in value.split(",") if p.strip()]
        if isinstance(value, list):
            value = [allow_list_entry(str(p)) for p in value]
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _check_db_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if value and scheme not in SUPPORTED_DB_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r}; use one of "
                + ", ".join(f"{s}://" for s in SUPPORTED_DB_SCHEMES)
            )
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _check_redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"must start with redis://, rediss:// or unix://, got {value!r}")
        return value

    @field_validator("PUBLIC_BASE_URL")
    @classmethod
    def _check_public_base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
        try:
            parts.port  # noqa: B018 - raises on a port that is no number or out of range
        except ValueError:
            raise ValueError(f"has an invalid port: {value!r}") from None
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(
                f"must be an origin with an optional path (no query, fragment or credentials), "
                f"got {value!r}"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _build_and_check(self) -> Settings:
        if not self.DATABASE_URL:
            if self.POSTGRES_SERVER:
                auth = self.POSTGRES_USER
                if self.POSTGRES_PASSWORD:
                    auth += f":{self.POSTGRES_PASSWORD}"
                self.DATABASE_URL = (
                    f"postgresql+asyncpg://{auth}@{self.POSTGRES_SERVER}:"
                    f"{self.POSTGRES_PORT}/{self.POSTGRES_DB}"
                )
            else:
                self.DATABASE_URL = DEFAULT_DATABASE_URL
        longest = max(self.WEBHOOK_TIMEOUT_SECONDS, self.SMTP_TIMEOUT_SECONDS)
        if longest >= self.DELIVERY_LEASE_SECONDS:
            # A lease shorter than an attempt lets a second worker re-claim a live delivery.
            raise ValueError(
                f"DELIVERY_LEASE_SECONDS: must exceed the longest channel timeout ({longest} s)"
            )
        if self.INBOUND_LEASE_SECONDS <= self.TASK_TIMEOUT_SECONDS:
            # A lease shorter than a task's bound lets a second worker re-claim a live event.
            raise ValueError(
                "INBOUND_LEASE_SECONDS: must exceed TASK_TIMEOUT_SECONDS "
                f"({self.TASK_TIMEOUT_SECONDS} s)"
            )
        below = [
            f"{cap}: below {default} ({getattr(self, default)}): a client's default would be "
            "over what it may set"
            for default, cap in RATE_LIMIT_CAPS.items()
            if (getattr(self, cap) or getattr(self, default)) < getattr(self, default)
        ]
        if below:
            raise ValueError("\n".join(below))
        if self.DEMO_ENABLED and not (self.demo_dir / "index.html").is_file():
            raise ValueError(
                f"DEMO_DIR: no index.html in {self.demo_dir} (point DEMO_DIR at a folder "
                "with the demo's files, or unset it to serve the ones chatapi ships)"
            )
        if self.ENVIRONMENT == "production":
            problems = []
            if not self.SECRET_KEY:
                problems.append("SECRET_KEY: required when ENVIRONMENT=production")
            elif _is_weak(self.SECRET_KEY):
                problems.append(
                    f"SECRET_KEY: too weak for production (at least {MIN_SECRET_LENGTH} "
                    "random characters)"
                )
            if self.ADMIN_API_KEY and _is_weak(self.ADMIN_API_KEY):
                problems.append(
                    f"ADMIN_API_KEY: too weak for production (at least {MIN_SECRET_LENGTH} "
                    "random characters)"
                )
            if problems:
                raise ValueError("\n".join(problems))
        return self

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite file."""
        return self.DATABASE_URL.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: broker, bus and limits all run in-process."""
        return self.REDIS_URL is None

    @property
    def demo_dir(self) -> Path:
        """The browser demo's folder: DEMO_DIR, else the package's own app/demo/static."""
        if self.DEMO_DIR:
            return Path(self.DEMO_DIR)
        # Package data, so an installed wheel finds it from any working directory.
        return Path(str(files("app.demo") / "static"))

    def rate_limit_cap(self, default_name: str) -> int:
        """The operator's cap on a client's own setting of limit `default_name` (e.g.
        RATE_LIMIT_EMAILS_PER_HOUR): its RATE_LIMIT_MAX_* setting, else that default."""
        cap: int | None = getattr(self, RATE_LIMIT_CAPS[default_name])
        return cap if cap is not None else int(getattr(self, default_name))

    @property
    def delivery_attempt_limit(self) -> int:
        """The schedule's gaps plus the first attempt."""
        return len(self.DELIVERY_RETRY_SCHEDULE) + 1


def _is_weak(secret: str) -> bool:
    return len(secret) < MIN_SECRET_LENGTH or secret.lower() in WEAK_SECRETS


class ConfigError(Exception):
    """Configuration cannot run; `problems` holds one human line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings() -> Settings:
    """Read settings, turning pydantic's report into one clear line per problem."""
    try:
        return Settings()
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if field:
                problems.append(f"{field}: {msg}")
            else:
                problems.extend(msg.splitlines())
        raise ConfigError(problems) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return load_settings()
