"""Engine outages while workers are inside steps: no worker exits, every job finishes, a step
that had checkpointed never runs again, and a step runs twice only where a claim was lost."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from tests.support.processes import Process, wait_until
from tests.support.stack import Stack
from workers import ledger
from workers.functions import canonical

STEPS = ("validate", "charge", "ship")  # process_order's checkpointed steps, in order
STEP_SECONDS = "1.5"  # long enough that a kill lands while steps are under way


def start_orders(stack: Stack, nonce: str, count: int) -> list[str]:
    order_ids = [f"{nonce}-{n}" for n in range(count)]
    for order_id in order_ids:
        assert stack.post("/jobs", {"order_id": order_id, "items": ["x"]}).status_code == 202
    return order_ids


def runs(stack: Stack, step: str, order_id: str) -> int:
    return ledger.count(step, order_id, stack.ledger_path)


def checkpointed(stack: Stack, order_id: str) -> set[str]:
    """The steps whose result the engine holds (GET /jobs/ID/steps: they run in order)."""
    steps = stack.get(f"/jobs/order:{order_id}/steps").json()["steps"]
    done = [s for s in steps if s["kind"] == "step" and s["status"] == "resolved"]
    return set(STEPS[:len(done)])


def drops(stack: Stack, order_id: str) -> int:
    """How many times a worker dropped this job's run because its claim was lost."""
    pattern = re.compile(rf"workflow order:{re.escape(order_id)} dropped because")
    return sum(len(pattern.findall(worker.log())) for worker in stack.workers)


@pytest.mark.parametrize(("store", "outages", "fault"), [
    ("sqlite", (2,), "kill"), ("sqlite", (6,), "kill"), ("sqlite", (20,), "kill"),
    ("sqlite", (6, 6), "kill"),
    ("postgres", (6,), "kill"),  # one outage past the claims' ttl on the other store
    # Frozen (SIGSTOP), not dead: the workers' calls wait in its sockets, answered at SIGCONT.
    ("sqlite", (6,), "freeze"),
], ids=["2s", "6s", "20s", "two-6s-2s-apart", "postgres-6s", "frozen-6s"])
def test_workers_ride_out_an_engine_outage_while_steps_run(make_stack, store, nonce, outages,
                                                           fault):
    stack = make_stack(store=store)
    stack.engine.start()
    workers = [stack.start_worker("worker", env={"STEP_PAUSE_SECONDS": STEP_SECONDS})
               for _ in range(3)]
    stack.start_gateway()
    order_ids = start_orders(stack, nonce, 6)
    wait_until(lambda: all(runs(stack, "validate:started", o) for o in order_ids)
               and any(runs(stack, "validate", o) for o in order_ids), 30,
               "every job to be inside a step and one step to be done")

    snapshots = []  # (when, the steps of each job the engine held as done by then)
    for number, seconds in enumerate(outages):
        if number:
            time.sleep(2)
        done = {o: checkpointed(stack, o) for o in order_ids}
        snapshots.append((time.time(), done))
        if fault == "freeze":
            os.kill(stack.engine.pid, signal.SIGSTOP)
            time.sleep(seconds)
            os.kill(stack.engine.pid, signal.SIGCONT)
        else:
            stack.engine.kill()
            assert not stack.engine.alive()
            time.sleep(seconds)
            stack.engine.start()  # same store, same ports

    for order_id in order_ids:
        settled = stack.wait_settled(f"order:{order_id}", timeout=90)
        assert settled["status"] == "resolved", settled
    dead = [w.name for w in workers if not w.alive()]
    assert not dead, f"{dead} exited:\n" + "\n".join(w.log()[-3000:] for w in workers)
    for order_id in order_ids:
        counts = {step: runs(stack, step, order_id) for step in STEPS}
        assert all(counts.values()), counts
        extra = sum(counts.values()) - len(STEPS)
        assert extra <= drops(stack, order_id), (order_id, counts, drops(stack, order_id))
    for taken_at, done in snapshots:  # a run under way then may still end; none may start
        for order_id, steps in done.items():
            for step in steps:
                again = ledger.started_since(step, order_id, taken_at, stack.ledger_path)
                assert again == 0, f"{step} of {order_id} had checkpointed, then ran again"
    if max(outages) > 5:  # longer than a claim's ttl: the fault took effect
        assert sum(drops(stack, o) for o in order_ids) >= 1


def test_a_step_queued_when_its_claim_is_lost_never_starts(make_stack, nonce):
    """With one scheduler loop (4 step threads) and six jobs, two steps wait for a thread.
    Worker A freezes past its claims' ttl; B takes the six over and finishes them. When A
    wakes, its four running steps end (they were under way: they may run twice), but the two
    that had not started must not start: B ran them and they checkpointed."""
    stack = make_stack()
    stack.engine.start()
    env = {"WORKER_SCHEDULERS": "1"}
    frozen = stack.start_worker("worker", env)
    stack.start_gateway()
    bodies = {f"q{n}-{nonce}": {"work": 3, "nonce": nonce, "n": n} for n in range(6)}
    for job_id, body in bodies.items():
        assert stack.begin(job_id, body).status_code == 202
    keys = {job_id: canonical(body) for job_id, body in bodies.items()}

    def started(job_id: str) -> int:
        return ledger.count("foo:started", keys[job_id], stack.ledger_path)

    wait_until(lambda: sum(map(started, bodies)) >= 4, 15, "four steps under way")
    time.sleep(0.3)
    queued = [job_id for job_id in bodies if not started(job_id)]
    assert len(queued) == 2, {job_id: started(job_id) for job_id in bodies}
    stack.start_worker("worker", env)
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        for job_id in bodies:  # the other worker finishes them all while A is frozen
            assert stack.wait_settled(job_id, timeout=30)["status"] == "resolved"
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    time.sleep(5)  # A's running steps end (3 s); a queued one would have started by then
    for job_id in queued:
        assert started(job_id) == 1, (job_id, frozen.log()[-3000:])
    assert frozen.alive()


def fan_out_inside_its_squares(make_stack, nonce: str, count: int,
                               step_pause: float) -> tuple[Stack, Process, str]:
    """A stack whose one worker, with one scheduler loop, holds a fan-out of `count` squares,
    suspended, and is inside every square's step (each `step_pause` s long)."""
    stack = make_stack()
    stack.engine.start()
    worker = stack.start_worker("worker", {"STEP_PAUSE_SECONDS": str(step_pause),
                                           "WORKER_SCHEDULERS": "1"})
    stack.start_gateway()
    job_id = f"fan-{nonce}"
    assert stack.post(f"/fan-out-workflow?id={job_id}", {"count": count}).status_code == 202
    wait_until(lambda: all(ledger.count("square:started", str(n), stack.ledger_path)
                           for n in range(count)), 15, "the squares to be inside their steps")
    return stack, worker, job_id


def test_a_fan_out_resumes_after_its_squares_were_dropped(make_stack, nonce):
    """One scheduler loop holds the fan-out, suspended, and runs its squares. The engine goes
    down past the squares' claims, so their runs are dropped here, and their awaits with them;
    replayed, they finish, and the fan-out's resume must replay it rather than resume nothing
    (it then held its task for good) or invoke it again over its coroutine (an error)."""
    stack, worker, job_id = fan_out_inside_its_squares(make_stack, nonce, 3, step_pause=3)
    stack.engine.kill()
    time.sleep(8)  # past a claim's ttl (5 s)
    stack.engine.start()

    done = stack.job_settled(job_id, timeout=30)
    assert done["result"] == {"results": [0, 1, 4], "total": 5}
    assert '"level": "ERROR"' not in worker.log()


def test_a_fan_out_resumed_while_its_square_runs_stale_here(make_stack, nonce):
    """Worker A holds the fan-out, suspended, and runs its square (a 20 s step). A freezes past
    the square's claim; B takes the square over and finishes it, and the fan-out's resume is
    offered to A, which holds it in memory. A wakes with the stale square still running: the
    resume must replay the fan-out, not set B's result on A's unfinished square (the SDK's
    assertion dropped the fan-out, whose task then waited out its claim)."""
    stack, frozen, job_id = fan_out_inside_its_squares(make_stack, nonce, 1, step_pause=20)
    stack.start_worker("worker", {"WORKER_SCHEDULERS": "1"})
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: stack.promise_state(f"{job_id}.1") == "RESOLVED", 30,
                   "the other worker to finish the square")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)

    done = stack.job_settled(job_id, timeout=30)
    assert done["result"] == {"results": [0], "total": 0}
    assert '"level": "ERROR"' not in frozen.log(), frozen.log()[-3000:]
    assert f"workflow {job_id} dropped" not in frozen.log()
    assert frozen.alive()
