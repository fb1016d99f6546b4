"""Settings: read once from the environment into a frozen object.

The unprefixed names come first (REGISTRY_PORT, SECURITY_*, METRICS_*, ALERT_*),
then ``R13_*`` for the rest; README.md lists every one. A bad value stops start-up
with a message that names the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from r13core.access import Rule, load_rules
from r13core.config import Feature
from r13core.database import default_url
from r13core.errors import InvalidValue
from r13core.keys import IPNetwork, parse_cidrs
from r13core.storage import parse_url
from r13core.users import Role


class SettingsError(InvalidValue):
    """An environment variable has a value r13 cannot use."""


class SecuritySettingsError(SettingsError):
    """A security variable (identity, abuse control) has a value r13 cannot use."""


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    lo: int,
    hi: int,
    error: type[SettingsError] = SettingsError,
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise error(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise error(f"{name}={value} is out of range {lo}..{hi}")
    return value


def _bool(
    env: Mapping[str, str], name: str, error: type[SettingsError] = SettingsError
) -> bool | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise error(f"{name}={raw!r} must be 0 or 1")


def database_url(env: Mapping[str, str]) -> str | None:
    """R13_DATABASE_URL, checked (r13core/storage/backends.py); None when unset or blank."""
    raw = env.get("R13_DATABASE_URL", "").strip()
    if not raw:
        return None
    try:
        parse_url(raw)
    except InvalidValue as exc:  # the message never repeats the URL: it may hold a password
        raise SettingsError(f"R13_DATABASE_URL: {exc}") from None
    return raw


@dataclass(frozen=True)
class Settings:
    """Everything r13 reads from its environment, validated."""

    host: str = "localhost"
    port: int = 4873
    data_dir: Path = Path("var")
    workers: int = 2
    threads: int = 8
    public_url: str = "http://localhost:4873"
    allowed_hosts: tuple[str, ...] = ()
    max_body: int = 100 * 1024 * 1024
    rate_limit_window_ms: int = 900_000
    rate_limit_max: int = 1000
    api_key_expiry_ms: int = 86_400_000
    metrics_interval_ms: int = 1000
    metrics_history: int = 60
    alert_cpu: int = 80
    alert_memory: int = 85
    alert_latency_ms: int = 1000
    # Housekeeping: the periodic orphan sweep, and how often each worker writes its
    # buffered download/publish counts to the database.
    sweep_interval_ms: int = 3_600_000
    sweep_min_age_ms: int = 3_600_000
    usage_flush_interval_ms: int = 5000
    # R13_FEATURE_<NAME>=0|1: bits forced at start, as (flag, on) pairs.
    feature_overrides: tuple[tuple[Feature, bool], ...] = field(default=())
    # R13_DATABASE_URL: where metadata lives; None = the data dir's file (storage_url).
    database_url: str | None = None

    @property
    def storage_url(self) -> str:
        """The metadata database's URL: R13_DATABASE_URL, else ``sqlite:///<data>/registry.sqlite3``."""
        return self.database_url if self.database_url is not None else default_url(self.data_dir)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse ``env`` (default: os.environ); SettingsError names a bad variable."""
        env = os.environ if env is None else env
        host = env.get("REGISTRY_HOST", "localhost").strip() or "localhost"
        port = _int(env, "REGISTRY_PORT", 4873, 1, 65535)
        public_url = env.get("R13_PUBLIC_URL", "").strip().rstrip("/")
        if not public_url:
            public_url = f"http://{host}:{port}"
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"R13_PUBLIC_URL={public_url!r} must start with http:// or https://"
            )
        allowed = tuple(
            h.strip().lower() for h in env.get("R13_ALLOWED_HOSTS", "").split(",") if h.strip()
        )
        overrides = []
        for flag in Feature:
            on = _bool(env, f"R13_FEATURE_{flag.name}")
            if on is not None:
                overrides.append((flag, on))
        return cls(
            host=host,
            port=port,
            data_dir=Path(env.get("R13_DATA", "var").strip() or "var"),
            workers=_int(env, "R13_WORKERS", 2, 1, 64),
            threads=_int(env, "R13_THREADS", 8, 1, 256),
            public_url=public_url,
            allowed_hosts=allowed,
            max_body=_int(env, "R13_MAX_BODY", 100 * 1024 * 1024, 1024, 2**40),
            rate_limit_window_ms=_int(env, "SECURITY_RATE_LIMIT_WINDOW", 900_000, 1, 2**40),
            rate_limit_max=_int(env, "SECURITY_RATE_LIMIT_MAX", 1000, 1, 2**31),
            api_key_expiry_ms=_int(env, "SECURITY_API_KEY_EXPIRY", 86_400_000, 0, 2**50),
            metrics_interval_ms=_int(env, "METRICS_COLLECTION_INTERVAL", 1000, 50, 3_600_000),
            metrics_history=_int(env, "METRICS_HISTORY_SIZE", 60, 1, 100_000),
            alert_cpu=_int(env, "ALERT_CPU_THRESHOLD", 80, 1, 100),
            alert_memory=_int(env, "ALERT_MEMORY_THRESHOLD", 85, 1, 100),
            alert_latency_ms=_int(env, "ALERT_LATENCY_THRESHOLD", 1000, 1, 3_600_000),
            sweep_interval_ms=_int(env, "R13_SWEEP_INTERVAL", 3_600_000, 100, 2**40),
            sweep_min_age_ms=_int(env, "R13_SWEEP_MIN_AGE", 3_600_000, 0, 2**40),
            usage_flush_interval_ms=_int(env, "R13_USAGE_FLUSH_INTERVAL", 5000, 10, 86_400_000),
            feature_overrides=tuple(overrides),
            database_url=database_url(env),
        )


@dataclass(frozen=True)
class SecuritySettings:
    """Identity and abuse-control settings (``R13_*``; SECURITY_* are in :class:`Settings`)."""

    trusted_proxies: tuple[IPNetwork, ...] = ()
    open_signup: bool = False
    signup_role: Role = Role.READER
    auth_rate_limit_max: int | None = None
    """Requests per window on login and token routes (None: a tenth of the default)."""
    block_auth_failures: int = 10
    block_limit_violations: int = 100
    block_anomalies: int = 20
    block_window_ms: int = 600_000
    block_duration_ms: int = 3_600_000
    limiter_slots: int = 65536
    ipv6_prefix: int = 64
    """IPv6 clients are counted by this prefix for limits, strikes and blocks."""
    rules: tuple[Rule, ...] = field(default=())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecuritySettings:
        """Parse ``env``; SecuritySettingsError names a bad variable."""
        bad = SecuritySettingsError
        try:
            proxies = parse_cidrs(
                p for p in env.get("R13_TRUSTED_PROXIES", "").split(",") if p.strip()
            )
        except InvalidValue as exc:
            raise bad(f"R13_TRUSTED_PROXIES: {exc}") from None
        signup = _bool(env, "R13_OPEN_SIGNUP", bad)
        try:
            role = Role.parse(env.get("R13_SIGNUP_ROLE", "reader") or "reader")
        except InvalidValue as exc:
            raise bad(f"R13_SIGNUP_ROLE: {exc}") from None
        auth_max = _int(env, "R13_AUTH_RATE_LIMIT_MAX", 0, 0, 2**31, bad)
        slots = _int(env, "R13_RATE_LIMIT_SLOTS", 65536, 64, 1 << 24, bad)
        if slots & (slots - 1):
            raise bad(f"R13_RATE_LIMIT_SLOTS={slots} is not a power of two")
        rules_path = env.get("R13_ACCESS_RULES", "").strip()
        try:
            rules = load_rules(rules_path) if rules_path else ()
        except InvalidValue as exc:
            raise bad(f"R13_ACCESS_RULES: {exc}") from None
        return cls(
            trusted_proxies=proxies,
            open_signup=bool(signup),
            signup_role=role,
            auth_rate_limit_max=auth_max or None,
            block_auth_failures=_int(env, "R13_BLOCK_AUTH_FAILURES", 10, 0, 2**31, bad),
            block_limit_violations=_int(env, "R13_BLOCK_LIMIT_VIOLATIONS", 100, 0, 2**31, bad),
            block_anomalies=_int(env, "R13_BLOCK_ANOMALIES", 20, 0, 2**31, bad),
            block_window_ms=_int(env, "R13_BLOCK_WINDOW", 600_000, 1000, 2**32, bad),
            block_duration_ms=_int(env, "R13_BLOCK_DURATION", 3_600_000, 1000, 2**40, bad),
            limiter_slots=slots,
            ipv6_prefix=_int(env, "R13_IPV6_PREFIX", 64, 32, 128, bad),
            rules=rules,
        )
