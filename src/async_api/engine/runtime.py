"""The worker runtime: a Resonate node that polls one group and survives the engine's outages.

What the SDK 0.4.10 scheduler adds here (tests/test_outages.py proves each):

* Each claim gets its own process id and its own lease (engine/leases.py). Heartbeats renew
  exactly the claims held; a claim the server no longer knows is marked lost.
* A workflow whose claim is lost is *fenced*: its in-memory state is dropped before it writes
  another checkpoint or completes its task, and late results of its steps are discarded. The
  server gives the task to a worker (maybe this one), whose replay skips every step that had
  checkpointed. Only a step that was under way when the claim was lost can run twice.
* Whatever the server answers after an outage (a re-delivered task this process still holds,
  403 or 404 on a write, a refused claim), the workflow concerned is dropped and the process
  keeps serving: its task comes back once the claim expires. A worker exits only when told to.

Each task is logged when it is claimed and when it ends (completed or dropped) and counted in
async_api.metrics; the lines of a job's task carry the job's trace id (see async_api.logs).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from inspect import isgeneratorfunction
from typing import Any
from urllib.parse import quote

import requests
from resonate.actions import LFC, RFC
from resonate.cmd_queue import Claim, Command, Complete, Invoke, Resume
from resonate.collections import FunctionRegistry
from resonate.dataclasses import Invocation
from resonate.dependencies import Dependencies
from resonate.errors import ResonateError
from resonate.options import Options
from resonate.record import Record
from resonate.result import Err, Ok
from resonate.retry_policy import never
from resonate.scheduler.scheduler import Scheduler
from resonate.stores.record import DurablePromiseRecord, InvokeMsg, ResumeMsg, TaskRecord

from async_api import logs, metrics
from async_api.engine.client import CANCELED, SERVER_STATES, TIMEDOUT, TRACEPARENT_TAG
from async_api.engine.leases import Leases
from async_api.engine.sdk_fixes import (
    BindingDelayQueue,
    BindingProcessor,
    Bound,
    ClaimLost,
    FencedStore,
    NotJson,
    Offers,
    ReconnectingPoller,
    RecoveringCoro,
    StrictEncoder,
    function_of,
    job_fields,
)
from async_api.engine.transport import Transport, Unreachable
from async_api.engine.workflow import step_name

_log = logging.getLogger(__name__)

_STALE = object()  # a command for a record that was dropped or replaced
# Tasks one worker process takes at once for a group (claimed or queued to be claimed), shared
# by its scheduler loops; their steps run on the SDK's threads (4 per loop), so more would only
# wait here instead of going to an idle worker.
MAX_TASKS_IN_FLIGHT = 16

# How a task ends: its function returned or raised, or it waits (a sleep, a signal, another
# function; a later task resumes it), or this process gave the task up (claim lost and the like),
# or nothing ran: its job was settled before the task was claimed.
RESOLVED, REJECTED, SUSPENDED, DROPPED = "resolved", "rejected", "suspended", "dropped"
UNRUN = "unrun"


@dataclass
class _Run:
    """A task this process claimed and has not ended yet, as its log lines and metrics say it."""

    function: str
    fields: dict[str, Any]  # job_id, trace_id, traceparent (async_api.logs)
    started: float  # time.perf_counter() at the claim


class _Scheduler(Scheduler):
    """The SDK's scheduler with per-claim leases, fencing, and no exit on a server's answer."""

    def __init__(self, *, leases: Leases, heartbeat_seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._leases = leases
        self._heartbeat_seconds = heartbeat_seconds
        self._processor = BindingProcessor(self._records, self._may_write)
        self._delay_queue = BindingDelayQueue(self._records)
        self._current_root: str | None = None  # the workflow the scheduler thread works for
        self._runs: dict[str, _Run] = {}  # by workflow: the task held for it
        self._first_runs: set[str] = set()  # workflows whose first task this is, first claim
        self._finishing: Complete | None = None  # the Complete being handled, if any
        self._encoder = StrictEncoder()
        self._store.promises.current_root = lambda: self._current_root

    # --- one command at a time, never fatal ----------------------------------------------

    def _step(self, cmd: Any) -> list[Any]:
        command, root_id = self._unbind(cmd)
        if root_id is _STALE:
            return []
        self._current_root = root_id
        run = self._runs.get(root_id) if isinstance(root_id, str) else None
        token = logs.bind(**run.fields) if run is not None else None
        try:
            if root_id is not None and not self._may_write(root_id):
                self._drop(root_id, "its claim expired")
                return []
            commands = [self._bind(c) for c in super()._step(command)]
            if isinstance(root_id, str) and not any(
                    isinstance(c, Bound) and c.record is not None and c.record.root().id == root_id
                    for c in commands):
                # The workflow now waits (for a step, a timer, another promise) rather than
                # going on at once: a step's promise held for its result is written now
                # (sdk_fixes' _WorkflowPromiseStore).
                self._store.promises.write_held(root_id)
            return commands
        except ClaimLost:
            self._drop(self._current_root, "its claim expired while it was writing")
        except Exception as exc:
            if isinstance(exc, ResonateError) and exc.code in ("STORE_FORBIDDEN",
                                                               "STORE_NOT_FOUND"):
                # The claim went to another worker before its lease ran out by this clock.
                self._drop(self._current_root, f"the server refused a write ({exc.code})")
                return []
            _log.exception("dropping workflow %s after an unexpected error",
                           self._current_root or "(none)")
            self._drop(self._current_root, "of the error above")
        finally:
            if token is not None:
                logs.unbind(token)
            self._current_root = None
            self._task_source.refill()  # a claim made or refused, or a task ended: room changed
        return []

    def _unbind(self, cmd: Any) -> tuple[Command, Any]:
        """The command and the workflow it works for (None: none yet, _STALE: drop it)."""
        command, bound_to = (cmd.command, cmd.record) if isinstance(cmd, Bound) else (cmd, None)
        if not isinstance(command, Invoke | Resume | Complete):
            return command, None
        record = self._records.get(command.id)
        if record is None or (bound_to is not None and record is not bound_to):
            _log.info("discarding %s for %s: its run was dropped", type(command).__name__,
                      command.id)
            return command, _STALE
        return command, record.root().id

    def _bind(self, command: Command) -> Any:
        if isinstance(command, Invoke | Resume | Complete):
            return Bound(command, self._records.get(command.id))
        return command

    def _handle_invoke(self, invoke: Invoke) -> list[Command]:
        """The SDK's, but a workflow runs as a RecoveringCoro (sdk_fixes says why)."""
        record = self._records[invoke.id]
        unit = record.invocation.unit
        if not (isinstance(unit, Invocation) and isgeneratorfunction(unit.fn)):
            return super()._handle_invoke(invoke)
        assert not record.done()
        record.add_coro(RecoveringCoro(record, unit.fn(record.ctx, *unit.args, **unit.kwargs)))
        return self._handle_continue(record.id, next_value=None)

    def _process_lfc(self, record: Any, lfc: LFC) -> list[Command]:
        """The SDK's, with the step's promise tagged by its function, and written once it
        ends in a workflow's first run (sdk_fixes' _WorkflowPromiseStore says why)."""
        promises = self._store.promises
        promises.step_name = step_name(lfc.unit.fn)
        # a step named by the SDK is the workflow's own: its promise cannot exist before
        promises.first_run = lfc.opts.id is None and record.root().id in self._first_runs
        try:
            return super()._process_lfc(record, lfc)
        finally:
            promises.step_name, promises.first_run = None, False

    def _process_rfc(self, record: Any, rfc: RFC) -> list[Command]:
        """The SDK's, but a promise that another workflow, suspended here, awaited first (an
        order's approval: the canceled order, then its retry) is not shared: SDK 0.4.10 would
        reuse that workflow's record and register no callback of this workflow's own, so the
        promise's settle resumed only the first, and the retry waited for good
        (tests/test_workflows.py::test_a_canceled_order_awaits_no_approval_until_it_is_retried).
        The suspended one is forgotten; its own resume replays it."""
        named = rfc.opts.id if isinstance(rfc.unit, Invocation) else rfc.unit.id
        other = self._records.get(named) if named is not None else None
        if (isinstance(other, Record) and other.root().id != record.root().id
                and not other.root().has_task()):
            self._forget(other.root().id)
        return super()._process_rfc(record, rfc)

    # --- claims ---------------------------------------------------------------------------

    def _handle_claim(self, claim: Claim) -> list[Command]:
        task = claim.record
        if not self._task_source.current(task):
            return []  # a newer offer of the same task is queued: claim that one
        held = self._leases.get(task.task_id)
        if held is not None:  # the server re-sent a task this process holds: the claim expired
            self._drop(held.root_id, f"task {task.task_id} was delivered again")
        claim_pid = f"{self._pid}.{task.task_id}.{task.counter}"
        claimed_at = self._leases.now()
        try:
            message = self._store.tasks.claim(task_id=task.task_id, counter=task.counter,
                                              pid=claim_pid, ttl=int(self._leases.ttl * 1000))
        except ResonateError as exc:
            if exc.code not in ("STORE_FORBIDDEN", "STORE_NOT_FOUND"):
                raise
            _log.info("task %s (counter %s) is not claimable (claimed or done elsewhere); "
                      "skipped", task.task_id, task.counter)
            return []
        root_id = message.root_durable_promise.id
        if message.root_durable_promise.is_completed():
            self._complete_unrun(task, message.root_durable_promise)
            return []
        if isinstance(message, ResumeMsg):
            self._drop_stale_run(message.leaf_durable_promise.id)
        root = self._records.get(root_id)
        if root is not None and root.has_task():  # a stale run of the same workflow
            self._drop(root_id, f"task {task.task_id} replaces the one it held")
        elif (root is not None and isinstance(message, ResumeMsg)
              and not self._awaits(root_id, message.leaf_durable_promise.id)):
            # What the suspended workflow awaited ran here and was dropped (its claim lost),
            # and its await with it: the SDK would invoke the workflow again over the coroutine
            # it holds (an AssertionError), or resume nothing and hold the task for good. It
            # replays from the server instead (tests/test_outages.py::
            # test_a_fan_out_resumes_after_its_squares_were_dropped).
            self._forget(root_id)
        self._leases.hold(task.task_id, task.counter, claim_pid, root_id, claimed_at)
        self._current_root = root_id
        # The workflow's invoke task, claimed for the first time: nothing of it ran before. A
        # resume task, or a task the server offers again (counter > 1), replays earlier steps.
        if isinstance(message, InvokeMsg) and task.counter == 1:
            self._first_runs.add(root_id)
        else:
            self._first_runs.discard(root_id)
        if isinstance(message, InvokeMsg):
            commands = self._process_invoke_msg(message, task)
        else:
            commands = self._process_resume_msg(message, task)
        self._task_started(root_id, task.task_id)
        return commands

    def _drop_stale_run(self, leaf_id: str) -> None:
        """A resume says `leaf_id` settled, yet it may still run here as a workflow of its own
        (a square whose claim lapsed while this worker was frozen, finished by another worker):
        that run is stale. SDK 0.4.10 set the server's result on its record, whose step was not
        done, and its assertion dropped the resumed workflow, whose task then waited out a claim
        ttl. The stale run is dropped first, and its starter replays from the server
        (tests/test_outages.py::test_a_fan_out_resumed_while_its_square_runs_stale_here)."""
        leaf = self._records.get(leaf_id)
        if isinstance(leaf, Record) and leaf.is_root and leaf.has_coro() and not leaf.done():
            self._drop(leaf_id, "another worker settled it meanwhile")

    def _awaits(self, root_id: str, promise_id: str) -> bool:
        """Whether the workflow `root_id`, as held here, waits for the promise `promise_id`."""
        return any(record is not None and record.root().id == root_id
                   for record in map(self._records.get, self._awaiting_rfi.get(promise_id, ())))

    def _complete_unrun(self, task: TaskRecord, job: DurablePromiseRecord) -> None:
        """Completes a task whose job was settled before the task was made (the approval of an
        order canceled while it waited): nothing is left to run. The job's settle completed the
        tasks it had (patch 0006), not this one; run, the workflow's result would be refused
        and the task left claimed, sent again and held here for good (tests/test_workflows.py::
        test_an_order_canceled_while_it_waits_is_not_resumed_by_its_approval). Its line is
        the job's, in the job's trace (tests/test_logs.py)."""
        self._store.tasks.complete(task_id=task.task_id, counter=task.counter)
        root = self._records.get(job.id)
        if root is None or not root.has_task():  # a run still under way here ends as it would
            self._forget(job.id)
        function = job.invoke_info(self._encoder)["func_name"]
        metrics.TASKS_CLAIMED.labels(function).inc()  # claimed and completed: the counts add up
        metrics.TASKS_COMPLETED.labels(function, UNRUN).inc()
        _log.info("task %s completed without running: its job is already %s", task.task_id,
                  SERVER_STATES.get(job.state, job.state),
                  extra=logs.fields(**job_fields(job.id, job), task_id=task.task_id))

    def _handle_complete(self, complete: Complete) -> list[Command]:
        try:
            return self._complete_with(complete)
        except NotJson as exc:
            # No retry: the same value would fail again, after running the step's effect again.
            record = self._records[self._settled_by(complete)]
            record.retry_policy = never()
            return self._complete_with(Complete(complete.id, Err(exc)))

    def _complete_with(self, complete: Complete) -> list[Command]:
        self._finishing = complete  # a task completed meanwhile ends with this result if its own
        try:
            return super()._handle_complete(complete)
        finally:
            self._finishing = None

    def _complete_task(self, id: str) -> None:
        record = self._records[id]
        task_id = record.get_task().task_id
        finishing = self._finishing
        if finishing is not None and self._settled_by(finishing) == id:
            # The root's promise is settled (the SDK settles it first, and non-strictly: by
            # this worker or before, by a cancel or a timeout), and settling a root completes
            # its claimed task on the server (scripts/resonate-patches/0006): no call of its
            # own, one server write less per job
            # (tests/test_stores.py::test_a_settled_job_leaves_no_task_behind).
            record.remove_task()
            # Its settle refused, as the job was canceled or timed out meanwhile, it stops as
            # one _drop finds so (_stopped; sdk_fixes' _WorkflowPromiseStore._settle).
            settled = self._store.promises.settled_elsewhere.pop(id, None)
            outcome = RESOLVED if isinstance(finishing.result, Ok) else REJECTED
        else:
            self._store.promises.write_held(id)  # a step's end is stored before the task's
            self._leases.completing(task_id)
            try:
                super()._complete_task(id)
            except ResonateError as exc:
                # 403: the job was canceled or timed out while its step ran, and its settle
                # completed the task (patch 0006) before a heartbeat saw it (a completing
                # claim's heartbeat says nothing): _drop ends the run as it says such a one
                lease = self._leases.get(task_id)
                if exc.code == "STORE_FORBIDDEN" and lease is not None and (
                        settled := self._store.promises.settled_as(id)) is not None:
                    self._leases.mark_lost(lease.claim_pid, settled)
                raise
            outcome, settled = SUSPENDED, None  # blocked on remote promises only
        self._leases.release(task_id)
        if settled is not None:
            self._stopped(id, settled)
        else:
            self._task_ended(id, outcome)

    def _settled_by(self, complete: Complete) -> str:
        """The id of the record whose promise `complete` settles (the SDK keeps some records
        under a second id, as a string naming the first)."""
        record = self._records.get(complete.id)
        return record if isinstance(record, str) else complete.id

    def _task_started(self, root_id: str, task_id: str) -> None:
        root = self._records[root_id]
        run = self._runs[root_id] = _Run(function_of(root),
                                         job_fields(root_id, root.durable_promise),
                                         time.perf_counter())
        metrics.TASKS_CLAIMED.labels(run.function).inc()
        _log.info("task started", extra=logs.fields(**run.fields, function=run.function,
                                                     task_id=task_id))

    def _task_ended(self, root_id: str, outcome: str) -> None:
        self._first_runs.discard(root_id)
        run = self._runs.pop(root_id, None)
        if run is None:
            return
        seconds = time.perf_counter() - run.started
        metrics.TASK_SECONDS.labels(run.function, outcome).observe(seconds)
        if outcome == DROPPED:
            metrics.TASKS_FAILED.labels(run.function).inc()
        else:
            metrics.TASKS_COMPLETED.labels(run.function, outcome).inc()
        _log.log(logging.WARNING if outcome == DROPPED else logging.INFO, "task finished",
                 extra=logs.fields(**run.fields, function=run.function, outcome=outcome,
                                   duration_ms=round(seconds * 1000, 2)))

    def _get_info_from_rfi(self, rfi: Any) -> tuple[Any, Any, Any, int | None]:
        """A durable function this workflow calls or starts joins the workflow's trace."""
        data, headers, tags, timeout = super()._get_info_from_rfi(rfi)
        run = self._runs.get(self._current_root or "")
        if run is not None and run.fields["traceparent"] and isinstance(rfi.unit, Invocation):
            tags = {**(tags or {}),
                    TRACEPARENT_TAG: logs.new_span(run.fields["traceparent"])[1]}
        return data, headers, tags, timeout

    def _may_write(self, root_id: str) -> bool:
        """False once the claim this workflow runs under may have gone to someone else."""
        root = self._records.get(root_id)
        if root is None or not root.has_task():
            return True  # between tasks: nothing is written until the next claim
        return self._leases.valid(root.get_task().task_id)

    def fence(self) -> None:
        """Asked by the store before every attempt of every call it makes."""
        if self._current_root is not None and not self._may_write(self._current_root):
            raise ClaimLost(self._current_root)

    def _drop(self, root_id: str | None, why: str) -> None:
        """Forgets a workflow's run: its records, its awaits, its claims (no more heartbeats).
        A run whose claim ended with its job's settle (a cancel, a timeout: the heartbeat saw
        it) ends quietly, since nothing of it is handed out again
        (tests/test_jobs.py::test_a_job_canceled_while_it_runs_ends_its_run_quietly)."""
        if root_id is None:
            return
        lost = self._leases.release_root(root_id)
        settled = next((lease.settled for lease in lost if lease.settled), None)
        if settled is not None:
            self._stopped(root_id, settled)
        else:
            self._leases.handed_back += 1
            self._task_ended(root_id, DROPPED)
            _log.warning("workflow %s dropped because %s (tasks %s); the server hands it out "
                         "again and its replay resumes from the last checkpoint", root_id, why,
                         ", ".join(lease.task_id for lease in lost) or "none")
        self._forget(root_id)

    def _stopped(self, root_id: str, settled: str) -> None:
        """A run whose job was canceled or timed out meanwhile ends quietly, as `settled`."""
        self._task_ended(root_id, settled)
        _log.info("workflow %s stops: its job was %s meanwhile", root_id, settled)

    def _forget(self, root_id: str) -> None:
        """Drops a workflow's records and awaits from memory (not remote children that run
        here as workflows of their own); a later task of it replays from the server."""
        root = self._records.get(root_id)
        if root is None:
            return
        doomed, stack = set(), [root]
        while stack:
            record = stack.pop()
            doomed.add(record.id)
            stack.extend(child for child in record.children
                         if not (child.is_root and child.has_coro()) and child.id not in doomed)
        for record_id in doomed:
            self._store.promises.forget(record_id)
            self._records.pop(record_id, None)
            self._awaiting_lfi.pop(record_id, None)
            self._awaiting_rfi.pop(record_id, None)
            self._subsriptions.pop(record_id, None)
        for awaiting in (self._awaiting_lfi, self._awaiting_rfi):
            for blocked in awaiting.values():
                blocked[:] = [record_id for record_id in blocked if record_id not in doomed]
        started_by = root.parent.root() if root.parent is not None else None
        if (started_by is not None and started_by.id not in doomed
                and self._records.get(started_by.id) is started_by):
            # The workflow that started this one (a fan-out, its square) keeps its record among
            # its children: a later run here makes a new record, so the kept one is never done,
            # and once the rest was, the SDK's own assertion became the fan-out's result (the
            # job rejected). That workflow replays from the server instead
            # (tests/test_engine_unit.py::test_forgetting_a_started_workflow_forgets_its_starter).
            if started_by.has_task():
                self._drop(started_by.id, f"{root_id}, which it started, was dropped here")
            else:
                self._forget(started_by.id)

    # --- heartbeats -----------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Renews each held claim; a claim the server no longer has is marked lost."""
        transport = Transport(self._store.url, self._heartbeat_seconds)
        while True:
            for claim_pid in self._leases.claim_pids():
                if not self._beat(transport, claim_pid):
                    break  # the next round tries again
            time.sleep(self._heartbeat_seconds)

    def _beat(self, transport: Transport, claim_pid: str) -> bool:
        """Renews one claim; False when the server could not be asked."""
        sent_at = self._leases.now()
        root_id = self._leases.root_of(claim_pid)
        run = self._runs.get(root_id) if root_id else None
        # its lines follow the job, as those of the scheduler thread do
        token = logs.bind(**run.fields) if run is not None else None
        try:
            response = transport.send(requests.Request(
                "post", f"{self._store.url}/tasks/heartbeat", json={"processId": claim_pid}))
            if not response.ok:
                raise Unreachable(f"the server answered {response.status_code}")
            if response.json().get("tasksAffected"):
                if not self._leases.renewed(claim_pid, sent_at):
                    _log.warning("claim %s lapsed here before the server confirmed its renewal",
                                 claim_pid)
            else:
                self._claim_gone(transport, claim_pid)
            return True
        except Exception as exc:
            _log.warning("heartbeat failed (%s)", exc)
            return False
        finally:
            if token is not None:
                logs.unbind(token)

    def hand_back_held(self) -> None:
        """At the end of a drain that did not finish them: each run still held ends here,
        said and counted as dropped with its job's fields; the server hands its task out again
        once the claim expires (tests/test_shutdown.py)."""
        for root_id in self._leases.held_roots():
            if root_id in self._runs:
                self._leases.handed_back += 1
                self._task_ended(root_id, DROPPED)

    def _claim_gone(self, transport: Transport, claim_pid: str) -> None:
        """A heartbeat renewed nothing: the server no longer has the claim. Settling a job
        completes its claimed task (scripts/resonate-patches/0006), and so does this run when
        it ends or suspends: a heartbeat sent meanwhile was no sign of an expiry, yet it said
        "claim expired on the server", a few times in every hundred short jobs
        (tests/test_faults.py::test_a_claim_that_ends_with_its_run_is_not_said_to_expire)."""
        if not self._leases.holds(claim_pid):
            return  # its run ended meanwhile, the common case: no need to ask the server
        root_id = self._leases.root_of(claim_pid)
        state = None
        if root_id is not None:
            response = transport.send(requests.Request(
                "get", f"{self._store.url}/promises/{quote(root_id, safe='')}"))
            state = SERVER_STATES.get(response.json().get("state", "")) if response.ok else None
        if not self._leases.holds(claim_pid):
            return  # its run ended meanwhile: the task was completed, not lost
        if state in (CANCELED, TIMEDOUT):
            _log.info("claim %s ended: its job was %s", claim_pid, state)
            self._leases.mark_lost(claim_pid, state)
        elif state in (RESOLVED, REJECTED):
            # by this run, which is about to release the claim, or by another worker after
            # an expiry (whose run here is then dropped, and says so): nothing more is written
            self._leases.mark_lost(claim_pid)
        else:
            _log.warning("claim %s expired on the server", claim_pid)
            self._leases.mark_lost(claim_pid)


@dataclass
class Worker:
    """A running worker node: it polls its group until drained."""

    poller: ReconnectingPoller
    leases: Leases
    hand_back_held: Callable[[], None]  # its scheduler's

    def held_tasks(self) -> int:
        return len(self.leases)

    def drain(self, grace_seconds: float) -> bool:
        """Stops taking tasks, then waits up to `grace_seconds` for the held ones to finish.

        Returns whether all finished (not dropped meanwhile, say for an engine outage). A task
        still held when the process exits is not lost: its claim expires (no more heartbeats)
        and the server delivers it to another worker, which replays it; only steps that had
        not completed run again.
        """
        self.poller.stop()
        handed_back = self.leases.handed_back
        deadline = time.monotonic() + grace_seconds
        while self.leases and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = not self.leases and self.leases.handed_back == handed_back
        self.hand_back_held()
        return drained


def run_worker(
    group: str,
    functions: Iterable[Callable[..., Any]],
    url: str,
    poll_url: str,
    *,
    nodes: int = 1,
    claim_ttl_seconds: float = 5.0,
    heartbeat_seconds: float = 2.0,
    timeout_seconds: float = 5.0,
    max_tasks: int = MAX_TASKS_IN_FLIGHT,
) -> list[Worker]:
    """Starts `nodes` Resonate nodes that poll `group` and run the registered durable functions.

    Each polls the server under its own process id and makes its engine calls one at a time,
    so the calls of several nodes overlap. Between them they hold at most `max_tasks` tasks,
    and they share the offers the server sends (sdk_fixes.Offers). The claim ttl must cover
    two heartbeats, so that one may fail (Settings.from_env checks it, naming the variables).
    """
    registry = FunctionRegistry()
    for function in functions:  # before a poller starts: a task may arrive at once
        registry.add(function.__name__, (function, Options(durable=True)))
    offers = Offers()
    nodes = max(1, nodes)  # WORKER_SCHEDULERS=0 still serves the group, with one node
    return [_run_node(group, registry, url, poll_url, offers, claim_ttl_seconds,
                      heartbeat_seconds, timeout_seconds, max(1, max_tasks // nodes))
            for _ in range(nodes)]


def _run_node(group: str, registry: FunctionRegistry, url: str, poll_url: str, offers: Offers,
              claim_ttl_seconds: float, heartbeat_seconds: float, timeout_seconds: float,
              max_tasks: int) -> Worker:
    leases = Leases(claim_ttl_seconds)
    poller = ReconnectingPoller(url=poll_url, group=group, offers=offers)
    # Tasks claimed or queued to claim; past this, offers wait for room in a node.
    poller.has_room = lambda queued: len(leases) + queued < max_tasks
    store = FencedStore(url, timeout_seconds)
    scheduler = _Scheduler(leases=leases, heartbeat_seconds=heartbeat_seconds,
                           deps=Dependencies(), pid=uuid.uuid4().hex, registry=registry,
                           store=store, task_source=poller)
    store.fence = scheduler.fence
    scheduler.start()
    return Worker(poller, leases, scheduler.hand_back_held)
