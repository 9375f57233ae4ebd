"""Service configuration from environment variables, checked at start-up.

Every service reads its settings through these helpers, so a bad value stops the process with a
message naming the variable, what was expected and what was found. Defaults are for local mode
(everything on 127.0.0.1, the local stack's ports). Outside local mode
(`OBSERVATORY_MODE=production`) credentials must be given explicitly: no default passwords.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOCAL_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/observatory"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/0"
LOCAL_MONGO_URL = "mongodb://127.0.0.1:27017/"
LOCAL_RABBITMQ_MANAGEMENT_URL = "http://guest:guest@127.0.0.1:15672"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Env:
    """Typed reads of environment variables, each failing with the variable's name."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        mode = self._environ.get("OBSERVATORY_MODE", "local")
        if mode not in ("local", "production"):
            raise ConfigError(f"OBSERVATORY_MODE: expected 'local' or 'production', got {mode!r}")
        self.local = mode == "local"

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(name, default).strip()
        if not value:
            raise ConfigError(f"{name}: must not be empty")
        return value

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        raw = self._environ.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name}: expected {minimum}..{maximum}, got {value}")
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        raw = self._environ.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name}: expected {minimum}..{maximum}, got {value}")
        return value

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, minimum=0, maximum=65535)

    def url(self, name: str, local_default: str, *, schemes: tuple[str, ...]) -> str:
        """A URL setting; outside local mode it has no default and must carry its credentials."""
        if not self.local and name not in self._environ:
            raise ConfigError(f"{name}: required when OBSERVATORY_MODE=production")
        value = self.text(name, local_default)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(f"{name}: expected a {'/'.join(schemes)} URL with a host")
        if not self.local and parts.password in (None, "", "guest"):
            raise ConfigError(f"{name}: a password is required outside local mode")
        return value

    # Each backend's variable, local default and accepted schemes, for every service alike.
    def amqp_url(self) -> str:
        return self.url("AMQP_URL", LOCAL_AMQP_URL, schemes=("amqp", "amqps"))

    def postgres_dsn(self) -> str:
        return self.url("POSTGRES_DSN", LOCAL_POSTGRES_DSN, schemes=("postgresql", "postgres"))

    def redis_url(self) -> str:
        return self.url("REDIS_URL", LOCAL_REDIS_URL, schemes=("redis", "rediss"))

    def mongo_url(self) -> str:
        return self.url("MONGO_URL", LOCAL_MONGO_URL, schemes=("mongodb",))

    def rabbitmq_management_url(self) -> str:
        return self.url(
            "RABBITMQ_MANAGEMENT_URL", LOCAL_RABBITMQ_MANAGEMENT_URL, schemes=("http", "https")
        )


@dataclass(frozen=True)
class Backends:
    """Where the shared servers are; each service reads the ones it uses."""

    amqp_url: str
    postgres_dsn: str
    redis_url: str
    mongo_url: str
    rabbitmq_management_url: str

    @classmethod
    def from_env(cls, env: Env) -> Backends:
        return cls(
            amqp_url=env.amqp_url(),
            postgres_dsn=env.postgres_dsn(),
            redis_url=env.redis_url(),
            mongo_url=env.mongo_url(),
            rabbitmq_management_url=env.rabbitmq_management_url(),
        )


def redact(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
