"""`async-api`, the job API from a shell: a thin layer of click over async_api.client.

Output is short lines for people, or the API's JSON with `--json` for scripts. Exit codes are
part of the interface, so that a script can branch on them: see EXIT_*.
"""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import click

from async_api.client import (
    DEFAULT_BODY,
    SUCCEEDED,
    ApiError,
    Client,
    ClientError,
    JobView,
    WaitTimeout,
)
from async_api.field_messages import flattened
from async_api.strict_json import parse_strict

DEFAULT_URL = "http://127.0.0.1:5001"
EXIT_OK = 0  # and `wait`: the job succeeded
EXIT_JOB_FAILED = 1  # `wait`: the job ended rejected, canceled or timedout
EXIT_WAIT_TIMEOUT = 2  # `wait`: the job was still pending when --timeout was up
EXIT_API_ERROR = 3  # the API answered an error (its code and message on stderr), or none at all
EXIT_USAGE = 64  # bad arguments (sysexits EX_USAGE; click's own 2 would read as a timeout)
EXIT_INTERRUPTED = 130  # Ctrl-C

# The fields of a job view the lines for people show, in this order, when present (--json
# shows every field).
DETAIL_FIELDS = ("function", "attempt", "retry_of", "retried_by", "waiting_for", "created_at",
                 "completed_at", "progress", "result", "reason")
BAR_WIDTH = 20
SPINNER = "|/-\\"

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print the API's JSON instead of lines for people.")
job_id_argument = click.argument("job_id", metavar="ID")


def http_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A URL without its scheme (`127.0.0.1:5001`) was sent nowhere, yet said as `cannot reach`
    (exit 3): a gateway down, to whoever read it."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL.", ctx, param)
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="ASYNC_API_URL", default=DEFAULT_URL, show_default=True,
              show_envvar=True, callback=http_url, help="The gateway's base URL.")
@click.option("--token", envvar="ASYNC_API_TOKEN", show_envvar=True,
              help="Bearer token, when the gateway has API_TOKENS set.")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None) -> None:
    """Start, watch and manage durable jobs of an async-api gateway.

    Exit codes: 0 done (for `wait`: succeeded), 1 the job failed or was canceled, 2 `wait`
    timed out, 3 the API answered an error or could not be reached, 64 bad arguments, 141 its
    output was closed before it was written (`| head`).
    """
    ctx.obj = Client(url, token)


@cli.command()
@click.option("--id", "job_id", help="Your id for the job, so that a resend cannot start it "
                                     "twice (default: a fresh UUID).")
@click.argument("body", metavar="JSON", required=False)
@json_option
@click.pass_obj
def begin(client: Client, job_id: str | None, body: str | None, as_json: bool) -> None:
    """Start `foo(JSON)` (default body: the API's {"foo": "bar"})."""
    try:  # as strictly as the API would read it: no NaN, no key twice
        payload = DEFAULT_BODY if body is None else parse_strict(body)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="JSON") from exc
    answer = client.begin(payload, id=job_id)
    show(answer, as_json, lambda: show_job({"job_id": answer["promise"],
                                            "status": answer["status"]}))


@cli.command()
@click.argument("order_id")
@click.argument("items", metavar="ITEM...", nargs=-1, required=True)
@json_option
@click.pass_obj
def submit(client: Client, order_id: str, items: tuple[str, ...], as_json: bool) -> None:
    """Submit an order job, `order:ORDER_ID`; a resend reconnects to it."""
    show_job_or_json(client.submit_job(order_id, list(items)), as_json)


def job_command(name: str, call: Callable[[Client, str], JobView], help_text: str) -> None:
    """A command `NAME ID` that shows the job view one client call returns."""
    @cli.command(name, help=help_text)
    @job_id_argument
    @json_option
    @click.pass_obj
    def command(client: Client, job_id: str, as_json: bool) -> None:
        show_job_or_json(call(client, job_id), as_json)


job_command("status", Client.status, "Show a job now, without waiting.")
job_command("cancel", Client.cancel, "Cancel a pending job (an error once it has finished).")
job_command("retry", Client.retry, "Run a finished job again; shows the new attempt.")


@cli.command()
@job_id_argument
@json_option
@click.pass_obj
def steps(client: Client, job_id: str, as_json: bool) -> None:
    """List the durable steps of a job's workflow."""
    answer = client.steps(job_id)
    show(answer, as_json, lambda: show_table(
        answer["steps"], ("id", "kind", "function", "status", "created_at", "completed_at")))


@cli.command()
@click.option("--status", "statuses", multiple=True, metavar="STATE",
              help="Only jobs in this state (repeatable: any of them): pending, resolved, "
                   "rejected, canceled, timedout, waiting_for_approval.")
@click.option("--function", help="Only jobs that run this durable function (e.g. foo).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show at most this many jobs, newest first (pages are followed).")
@json_option
@click.pass_obj
def jobs(client: Client, statuses: tuple[str, ...], function: str | None, limit: int,
         as_json: bool) -> None:
    """List jobs, newest first."""
    try:
        found = list(client.jobs(status=list(statuses) or None, function=function, limit=limit))
    except ApiError as exc:  # the API knows the words of its states and functions
        query = exc.details.get("query", {}) if isinstance(exc.details, dict) else {}
        for field, option in (("state", "--status"), ("function", "--function")):
            if exc.status == 422 and field in query:
                raise click.BadParameter(" ".join(text for _, text in flattened(query[field])),
                                         param_hint=f"'{option}'") from exc
        raise
    show(found, as_json, lambda: show_table(
        found, ("job_id", "status", "function", "created_at")))


def seconds_not_nan(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """FloatRange lets `nan` by (no comparison with it holds), and the request's timeout then
    died in urllib3 with a traceback; `inf` stays: wait until the job settles."""
    if math.isnan(value):
        raise click.BadParameter(f"{value} is not a number of seconds.", ctx, param)
    return value


@cli.command()
@job_id_argument
@click.option("--timeout", type=click.FloatRange(min=0), callback=seconds_not_nan, default=60,
              show_default=True,
              help="Seconds to wait before giving up (exit 2); the job goes on.")
@json_option
@click.pass_obj
def wait(client: Client, job_id: str, timeout: float, as_json: bool) -> int:
    """Wait for a job to settle, showing its progress on stderr.

    Exits 0 if it succeeded, 1 if it failed, was canceled or timed out, 2 if it was still
    running after --timeout.
    """
    progress = ProgressLine()
    try:
        job = client.wait(job_id, timeout, on_pending=progress.show)
    except WaitTimeout as exc:
        progress.clear()
        show_job_or_json(exc.job or {"job_id": job_id, "status": "pending"}, as_json)
        click.echo(f"timed out: {exc}", err=True)
        return EXIT_WAIT_TIMEOUT
    progress.clear()
    show_job_or_json(job, as_json)
    return EXIT_OK if job["status"] == SUCCEEDED else EXIT_JOB_FAILED


class ProgressLine:
    """A job's progress on stderr while `wait` runs: a spinner redrawn in place on a terminal;
    elsewhere (a log, a pipe) a new line only when the text changes."""

    def __init__(self) -> None:
        self.on_terminal = sys.stderr.isatty()
        self.turns = 0
        self.last_text = ""

    def show(self, job: JobView) -> None:
        text = progress_text(job)
        if self.on_terminal:
            click.echo(f"\r\033[K{SPINNER[self.turns % len(SPINNER)]} {text}", err=True,
                       nl=False)
        elif text != self.last_text:
            click.echo(text, err=True)
        self.turns += 1
        self.last_text = text

    def clear(self) -> None:
        if self.on_terminal and self.turns:
            click.echo("\r\033[K", err=True, nl=False)


def progress_text(job: JobView) -> str:
    """`ID STATUS`, with a bar, the percentage and the message when the job reports progress."""
    text = f"{job['job_id']} {job['status']}"
    progress = job.get("progress")
    if not progress:
        return text
    fraction = min(max(float(progress.get("fraction") or 0), 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    return (f"{text} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent(progress)} "
            f"{progress.get('message') or ''}").rstrip()


def percent(progress: dict[str, Any]) -> str:
    return f"{float(progress.get('fraction') or 0) * 100:.0f}%"


def show(answer: Any, as_json: bool, for_people: Callable[[], None]) -> None:
    """The API's JSON with --json, otherwise what `for_people` prints."""
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    else:
        for_people()


def show_job_or_json(job: JobView, as_json: bool) -> None:
    show(job, as_json, lambda: show_job(job))


def show_job(job: JobView) -> None:
    """`ID  STATUS`, then one indented line per detail the view has."""
    click.echo(f"{job['job_id']}  {job['status']}")
    for field in DETAIL_FIELDS:
        if job.get(field) is not None:
            click.echo(f"  {field}: {detail_text(field, job[field])}")


def detail_text(field: str, value: Any) -> str:
    if field == "progress" and isinstance(value, dict):
        return f"{percent(value)} {value.get('message') or ''}".rstrip()
    return value if isinstance(value, str) else json.dumps(value)


def show_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Aligned columns with a header; '-' where a row lacks a field."""
    cells = [[str(row.get(column) if row.get(column) is not None else "-") for column in columns]
             for row in rows]
    widths = [max(len(column), *(len(line[n]) for line in cells)) for n, column in
              enumerate(columns)]
    for line in [[column.upper() for column in columns], *cells]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                       strict=True)).rstrip())


def main() -> None:
    """The console script. click runs in non-standalone mode so that usage errors exit 64, not
    click's 2 (for `wait`, 2 means the job did not settle in time), and so that an API error is
    one line on stderr, not a traceback."""
    # Output whose reader went away (`| head -1`) ends the process as it ends `cat`: a shell
    # says 141, where click would exit 1, this CLI's "the job failed".
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        code = cli.main(standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        code = EXIT_USAGE
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except ClientError as exc:
        if isinstance(exc, ApiError):
            details = f" {json.dumps(exc.details)}" if exc.details else ""  # which fields, why
            click.echo(f"error: {exc.code}: {exc.message} (HTTP {exc.status}){details}",
                       err=True)
        else:
            click.echo(f"error: {exc}", err=True)
        # `begin`'s id, minted or given, when the job may have started: not after a 4xx,
        # which started nothing and which the same request meets again
        if exc.job_id is not None and not (isinstance(exc, ApiError) and exc.status < 500):
            click.echo(f"job id: {exc.job_id} (sending `begin --id {exc.job_id}` again with "
                       "the same JSON is safe)", err=True)
        code = EXIT_API_ERROR
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code or EXIT_OK)
