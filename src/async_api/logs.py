"""Logs of the gateway and the workers: one JSON object per line (LOG_FORMAT=json, the default)
or plain text (LOG_FORMAT=text), with the fields that let a reader follow a request and a job.

Flask-free: the workers and the engine layer log through it too. A line's fields beyond its
message come from the call (`logger.info("...", extra=fields(...))`) and from the context bound
for the request or the job being served (`bind`): request_id, trace_id, job_id. The trace
context is W3C's `traceparent`: the gateway reads it from a request or mints one, jobs.start
stores it on the job, and the worker serving the job binds it again, so that every line about
a job carries the same trace_id, in whichever process it was written.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import logging.config
import random
import re
import time
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

from async_api.settings import env_choice

FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error", "critical")

_NONE: MappingProxyType[str, Any] = MappingProxyType({})
# The fields of the request or job this greenlet or thread serves; "traceparent" is bound with
# them (jobs.start stores it on the job) but written to no line, trace_id says the same.
_bound: contextvars.ContextVar[MappingProxyType[str, Any]] = contextvars.ContextVar(
    "async_api_log_fields", default=_NONE)
_UNWRITTEN = "traceparent"


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a logging call: these fields go on its line."""
    return {"fields": values}


def bind(**values: Any) -> contextvars.Token[MappingProxyType[str, Any]]:
    """Adds fields to every line this greenlet or thread writes until `unbind`."""
    return _bound.set(MappingProxyType({**_bound.get(), **values}))


def unbind(token: contextvars.Token[MappingProxyType[str, Any]]) -> None:
    _bound.reset(token)


def add(**values: Any) -> None:
    """Adds fields to the rest of the current request's or job's lines: whatever bound the
    current fields drops these with its own when it ends (a request's teardown, `bound`)."""
    bind(**values)


@contextlib.contextmanager
def bound(**values: Any) -> Iterator[None]:
    token = bind(**values)
    try:
        yield
    finally:
        unbind(token)


def current_traceparent() -> str | None:
    """The trace context of the request or job being served, if any."""
    return _bound.get().get(_UNWRITTEN)


def current_job_id() -> str | None:
    """The id of the job being served (a request's, or the job a worker's step belongs to)."""
    return _bound.get().get("job_id")


# --- W3C trace context (https://www.w3.org/TR/trace-context/) --------------------------------

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_INVALID_TRACE, _INVALID_SPAN = "0" * 32, "0" * 16
SAMPLED = "01"


def parse_traceparent(header: str | None) -> tuple[str, str] | None:
    """(trace_id, flags) of a valid traceparent, else None (the caller then starts a trace)."""
    found = _TRACEPARENT.fullmatch((header or "").strip())
    if not found:
        return None
    version, trace_id, span_id, flags, rest = found.groups()
    if (version == "ff" or (version == "00" and rest) or trace_id == _INVALID_TRACE
            or span_id == _INVALID_SPAN):
        return None
    return trace_id, flags


def trace_id_of(traceparent: str | None) -> str | None:
    parsed = parse_traceparent(traceparent)
    return parsed[0] if parsed else None


REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"
# A request id a client sends is kept when it looks like one (a UUID, a proxy's id); any other
# value is replaced, so that a log line never holds what a client chose to put there.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")


def _random_hex(bits: int) -> str:
    """Ids that must be unique, not secret (as OpenTelemetry's): `secrets` costs a system call
    each, three per request. The random module reseeds itself in every forked process."""
    return f"{random.getrandbits(bits) or 1:0{bits // 4}x}"


def request_id(sent: str | None) -> str:
    """The id of a request: the one it sent, when well-formed, else a new one."""
    return sent if sent and _REQUEST_ID.fullmatch(sent) else _random_hex(128)


def new_span(parent: str | None) -> tuple[str, str]:
    """(trace_id, traceparent) of a new span: in the trace of `parent` (same flags) when it is a
    valid traceparent, else in a new, sampled trace."""
    trace_id, flags = parse_traceparent(parent) or (_random_hex(128), SAMPLED)
    return trace_id, f"00-{trace_id}-{_random_hex(64)}-{flags}"


# --- formatting ---------------------------------------------------------------------------------


def _line_fields(record: logging.LogRecord) -> dict[str, Any]:
    values = {**_bound.get(), **getattr(record, "fields", {})}
    values.pop(_UNWRITTEN, None)
    return values


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    """Formatted once per second, not once per line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC, to the millisecond: log stores sort and parse it as it is."""
    return f"{_utc_second(int(record.created))}.{int(record.msecs):03d}Z"


_ENCODER = json.JSONEncoder(default=str)  # json.dumps(default=) builds one per call


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, msg, then the line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": _timestamp(record), "level": record.levelname, "logger": record.name,
                "pid": record.process, "msg": record.getMessage(), **_line_fields(record)}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _ENCODER.encode(line)


class TextFormatter(logging.Formatter):
    """The same line for a terminal: the fields as key=value after the message."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{key}={value}" for key, value in _line_fields(record).items())
        text = (f"{_timestamp(record)} {record.levelname} {record.name}[{record.process}] "
                f"{record.getMessage()}{' ' if extra else ''}{extra}")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def log_format() -> str:
    return env_choice("LOG_FORMAT", "json", FORMATS)


def dict_config() -> dict[str, Any]:
    """The logging configuration of every process (logging.config.dictConfig): one handler on
    stderr, in LOG_FORMAT, at LOG_LEVEL (default INFO). gunicorn.conf.py hands it to gunicorn
    (logconfig_dict), so that gunicorn's own lines come out in the same format.

    The Resonate SDK logs each record it handles at INFO: it stays at WARNING unless LOG_LEVEL
    is DEBUG.
    """
    level = env_choice("LOG_LEVEL", "info", LEVELS).upper()
    formatter = JsonFormatter if log_format() == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"async_api": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"async_api": {"class": "logging.StreamHandler", "formatter": "async_api",
                                   "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["async_api"]},
        "loggers": {
            # gunicorn's error log: through the root handler (gunicorn keeps its level)
            "gunicorn.error": {"handlers": [], "propagate": True},
            "resonate": {"level": "DEBUG" if level == "DEBUG" else "WARNING"},
            # a worker's start and drain lines, whatever LOG_LEVEL: rare, and what process
            # managers and the tests wait for ("serving group")
            "workers.serve": {"level": "INFO"},
        },
    }


def setup() -> None:
    """Configures logging for this process (again, if it was: the same handler replaces it)."""
    logging.config.dictConfig(dict_config())
    # What no line writes is not collected either (the logging HOWTO, "Optimization"): the
    # thread, the process name, the calling function and line.
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging._srcfile = None
