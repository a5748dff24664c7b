"""Settings come from environment variables (12-factor); every one has a safe local default."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from async_api.contract import GROUPS

T = TypeVar("T", int, float)
# Ten years: the server keeps a promise's timeout in ms since the epoch, as an int64 (a larger
# one made it refuse every begin with a 400).
MAX_JOB_TIMEOUT_SECONDS = 10 * 365 * 24 * 3600


class SettingError(ValueError):
    """A variable's value the service cannot run with; the message names the variable."""


def _env_number(name: str, default: T, parse: Callable[[str], T], fits: Callable[[T], bool],
                rule: str) -> T:
    """The variable read by `parse`, if it `fits`; unset, `default`; else SettingError, at start
    (not, say, a negative hop count that fails only on a request with the header it reads)."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not fits(value):
        raise SettingError(f"{name} must be {rule}, not {raw!r}")
    return value


def env_int(name: str, default: int, least: int = 0, most: int | None = None) -> int:
    upto = f" to {most}" if most is not None else " or more"
    return _env_number(name, default, int,
                       lambda value: least <= value and (most is None or value <= most),
                       f"a whole number, {least}{upto}")


def _env_float(name: str, default: float, least: float = 0.0, above: bool = False) -> float:
    """A finite number of at least `least` (more than it if `above`)."""
    return _env_number(name, default, float,
                       lambda value: math.isfinite(value) and (value > least if above
                                                               else value >= least),
                       f"a number {'over' if above else 'of at least'} {least:g}")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """The variable, one of `choices` whatever its case (lower-cased); else SettingError. Read
    by logs.py too, before the other settings (a bad LOG_LEVEL was a traceback of dictConfig)."""
    chosen = os.environ.get(name, "").strip() or default
    if chosen.lower() not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, not {chosen!r}")
    return chosen.lower()


def _env_list(name: str, choices: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """A comma-separated variable as a tuple, blanks dropped; each item one of `choices`."""
    items = tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())
    unknown = [item for item in items if choices is not None and item not in choices]
    if unknown:
        raise SettingError(f"{name} may name {', '.join(choices or ())}, not {unknown[0]!r}")
    return items


def _env_tokens(name: str) -> tuple[str, ...]:
    """Bearer tokens: blank turns auth off, but a value that names no token (`" , "`) or an
    entry with nothing after its name (`alice:`, what `alice:$UNSET` gives) would turn it off
    or accept a token anyone can guess. Never says a token in its message."""
    tokens = _env_list(name)
    if os.environ.get(name, "").strip() and not tokens:
        raise SettingError(f"{name} must name at least one token, or be empty to turn auth off")
    for entry in tokens:
        if entry.endswith(":"):
            raise SettingError(f"{name} must give a token after {entry!r}, not nothing")
    return tokens


def _env_url(name: str, default: str) -> str:
    """An http(s) URL with a host; a trailing "/", written as often as not, is dropped."""
    raw = os.environ.get(name) or default
    url = raw.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest.split("/")[0]:
        raise SettingError(f"{name} must be an http:// or https:// URL, not {raw!r}")
    return url


@dataclass(frozen=True)
class Settings:
    resonate_url: str = "http://127.0.0.1:8001"
    resonate_poll_url: str = "http://127.0.0.1:8002"
    # How long the gateway waits on one engine call before answering 503.
    engine_timeout_seconds: float = 5.0
    # Calls to the engine one gateway process makes at once; past that, and a moment's wait,
    # a request is refused with 503 "overloaded" rather than queued (README, "Overload").
    engine_max_calls: int = 32  # as many as the connections it keeps (engine/transport.py)
    # Requests at work one gateway process takes at once (probes, /metrics and held long-polls
    # aside); past that, a request is refused at once with 503 "overloaded" (admission.py).
    # 0 turns the gate off.
    admission_max_requests: int = 16
    # A job that has not finished by then is settled as timed out by the server.
    job_timeout_seconds: int = 24 * 3600
    max_body_bytes: int = 1024 * 1024
    max_id_length: int = 200
    max_json_depth: int = 32
    # How long POST /price-quote waits for the worker before answering 202 with the job.
    quote_timeout_seconds: float = 3.0
    # Signs approval webhooks (HMAC-SHA256 of the body); unset: webhooks are not checked.
    webhook_secret: str = ""
    retry_after_seconds: int = 1
    # The longest a long-poll (/wait?timeout=, Prefer: wait=, :wait) holds a request.
    long_poll_max_seconds: float = 30.0
    # Reverse proxies in front of the gateway whose X-Forwarded-Proto/Host/Port/For are
    # believed when absolute URLs (Location, Operation-Location) are built; 0 believes none.
    trusted_proxy_hops: int = 0
    # On SIGTERM, how long a worker lets the tasks it holds finish before it exits.
    worker_grace_seconds: float = 20.0
    # Workers: every business step first pauses this long (fault tests and demos act mid-step).
    step_pause_seconds: float = 0.0
    # A worker's claim on a task lasts this long unless a heartbeat renews it. Longer: a worker
    # that dies is replaced later (its tasks wait out the ttl). Shorter: a shorter engine
    # outage makes the workers drop their runs (the step under way may then run twice).
    claim_ttl_seconds: float = 5.0
    # How often a worker renews its claims; the ttl must cover two, so that one may fail.
    heartbeat_seconds: float = 2.0
    # Scheduler loops per worker group in one worker process, each with its own poller, claims
    # and share of the tasks in flight; they share the server's offers. A loop makes its calls
    # to the engine one at a time: one loop capped a burst at the round trips of one job after
    # another. 8 finish a burst sooner than 4 and leave /begin above the Celery peer; more took
    # CPU from the gateway's begins in full runs (PERFORMANCE.md, "Eight scheduler loops per
    # worker group").
    worker_schedulers: int = 8
    # How much lower a `python -m workers` process's CPU priority is than the gateway's and the
    # server's (workers/priority.py): when the CPU is full, jobs wait, not requests. 0: none.
    # 3 rather than 5 leaves a burst's jobs enough CPU to keep up with its begins, and /begin
    # above the Celery peer (PERFORMANCE.md, "Workers give way on the CPU, by 3").
    worker_nice: int = 3
    # Same-process mode: each gateway process also serves these worker groups.
    embedded_worker_groups: tuple[str, ...] = ()
    # Bearer tokens the gateway accepts (API_TOKENS, comma-separated); empty turns auth off.
    # "name:token" names the principal the token speaks for (auth.py); a bare token is
    # the principal "default".
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    # Principals that see and act on every job, not only their own.
    admin_principals: tuple[str, ...] = ()
    # The one token GET /metrics accepts when set; unset, /metrics takes the API's tokens.
    metrics_token: str = field(default="", repr=False)
    # A `python -m workers` process serves its metrics on this port; 0 serves none.
    worker_metrics_port: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        """The settings the environment gives; SettingError names a variable it cannot use."""
        settings = cls(
            resonate_url=_env_url("RESONATE_URL", cls.resonate_url),
            resonate_poll_url=_env_url("RESONATE_POLL_URL", cls.resonate_poll_url),
            engine_timeout_seconds=_env_float("ENGINE_TIMEOUT_SECONDS",
                                              cls.engine_timeout_seconds, above=True),
            engine_max_calls=env_int("ENGINE_MAX_CALLS", cls.engine_max_calls, least=1),
            admission_max_requests=env_int("ADMISSION_MAX_REQUESTS",
                                            cls.admission_max_requests),
            job_timeout_seconds=env_int("JOB_TIMEOUT_SECONDS", cls.job_timeout_seconds, least=1,
                                         most=MAX_JOB_TIMEOUT_SECONDS),
            max_body_bytes=env_int("MAX_BODY_BYTES", cls.max_body_bytes, least=1),
            max_id_length=env_int("MAX_ID_LENGTH", cls.max_id_length, least=1),
            max_json_depth=env_int("MAX_JSON_DEPTH", cls.max_json_depth, least=1),
            quote_timeout_seconds=_env_float("QUOTE_TIMEOUT_SECONDS", cls.quote_timeout_seconds),
            webhook_secret=os.environ.get("WEBHOOK_SECRET", ""),
            retry_after_seconds=env_int("RETRY_AFTER_SECONDS", cls.retry_after_seconds),
            long_poll_max_seconds=_env_float("LONG_POLL_MAX_SECONDS", cls.long_poll_max_seconds),
            trusted_proxy_hops=env_int("TRUSTED_PROXY_HOPS", cls.trusted_proxy_hops),
            worker_grace_seconds=_env_float("WORKER_GRACE_SECONDS", cls.worker_grace_seconds),
            step_pause_seconds=_env_float("STEP_PAUSE_SECONDS", cls.step_pause_seconds),
            claim_ttl_seconds=_env_float("CLAIM_TTL_SECONDS", cls.claim_ttl_seconds, above=True),
            heartbeat_seconds=_env_float("HEARTBEAT_SECONDS", cls.heartbeat_seconds, above=True),
            worker_schedulers=env_int("WORKER_SCHEDULERS", cls.worker_schedulers),
            worker_nice=env_int("WORKER_NICE", cls.worker_nice, most=19),
            embedded_worker_groups=_env_list("EMBEDDED_WORKER_GROUPS", GROUPS),
            api_tokens=_env_tokens("API_TOKENS"),
            admin_principals=_env_list("ADMIN_PRINCIPALS"),
            metrics_token=os.environ.get("METRICS_TOKEN", "").strip(),
            worker_metrics_port=env_int("WORKER_METRICS_PORT", cls.worker_metrics_port,
                                         most=65535),
        )
        if settings.heartbeat_seconds * 2 > settings.claim_ttl_seconds:
            raise SettingError(  # one heartbeat may fail without the claim being lost
                f"CLAIM_TTL_SECONDS ({settings.claim_ttl_seconds:g}) must be at least twice "
                f"HEARTBEAT_SECONDS ({settings.heartbeat_seconds:g})")
        return settings
