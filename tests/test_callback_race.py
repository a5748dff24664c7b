"""A callback registered while its promise is being completed always wakes its waiter.

The SDK awaits a remote promise with POST /callbacks and then waits for a resume task, unless
the answer shows the promise completed. Upstream v0.7.0 read the promise, then inserted the
callback only if the promise was still pending, and answered with the promise as first read: a
completion in between left "pending, no callback" and nothing to wake the workflow, which
never settled (test_workflows.py's approval flows, when the webhook came at once).
scripts/resonate-patches/0003-callback-sees-completion.patch answers with the promise as the
insert saw it. This talks to the server directly, to hit that window 200 times in a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.processes import wait_until

PAIRS = 200  # unpatched, 5 to 47 of them lost their wake-up in each of 20 runs
THREADS = 8
GROUP = "callback-race"
TIMEOUT = 2**62  # ms: never times out
REQUEST_TIMEOUT_SECONDS = 10


class TaskPoller:
    """A poll connection of GROUP, as a worker holds one: collects the ids of the tasks the
    server sends it, each once (an unclaimed one is sent again)."""

    def __init__(self, poll_url: str) -> None:
        self.url = f"{poll_url}/{GROUP}/{uuid.uuid4().hex}"
        self.recv = {"type": "poll", "data": {"group": GROUP, "id": self.url.rsplit("/", 1)[1]}}
        self.task_ids: set[str] = set()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TaskPoller:
        self._thread.start()
        wait_until(self.connected.is_set, 10, "the poll connection")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:  # a quiet second ends the read, so that a stop is seen
                with requests.get(self.url, stream=True, timeout=(5, 1)) as response:
                    self.connected.set()
                    for line in response.iter_lines():
                        if line.startswith(b"data:"):
                            self.task_ids.add(json.loads(line[5:])["task"]["id"])
                        if self._stop.is_set():
                            return
            except requests.RequestException:
                time.sleep(0.05)


def race(engine_url: str, recv: dict, n: int) -> dict:
    """Creates a promise, then registers a callback on it and resolves it at the same instant;
    returns the answer to POST /callbacks."""
    promise_id = f"race-{uuid.uuid4().hex}-{n}"
    created = requests.post(f"{engine_url}/promises", timeout=REQUEST_TIMEOUT_SECONDS,
                            json={"id": promise_id, "timeout": TIMEOUT, "param": {}})
    assert created.status_code == 201, created.text
    both = threading.Barrier(2)
    answers: dict[str, requests.Response] = {}

    def register() -> None:
        both.wait()
        answers["callback"] = requests.post(
            f"{engine_url}/callbacks", timeout=REQUEST_TIMEOUT_SECONDS,
            json={"id": f"waiter-{n}", "promiseId": promise_id, "rootPromiseId": f"root-{n}",
                  "timeout": TIMEOUT, "recv": recv})

    registering = threading.Thread(target=register)
    registering.start()
    both.wait()
    resolved = requests.patch(f"{engine_url}/promises/{promise_id}",
                              timeout=REQUEST_TIMEOUT_SECONDS,
                              json={"state": "RESOLVED", "value": {}})
    registering.join()
    assert resolved.status_code == 201, resolved.text
    answer = answers["callback"]
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_a_callback_racing_its_promises_completion_always_wakes_its_waiter(make_stack, store):
    stack = make_stack(store)
    engine = stack.engine.start()
    with TaskPoller(engine.poll_url) as poller:
        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(lambda n: race(engine.url, poller.recv, n), range(PAIRS)))
        # A waiter waits when told "pending": the callback it was told of must then wake it.
        waiting = [a for a in answers if a["promise"]["state"] == "PENDING"]
        lost = [a for a in waiting if a["callback"] is None]
        shapes = Counter((a["promise"]["state"], a["callback"] is not None) for a in answers)
        registered = sum(a["callback"] is not None for a in answers)
        wait_until(lambda: len(poller.task_ids) >= registered, 15, "a task per callback")
        time.sleep(0.5)  # a task more than callbacks would show here
        assert (len(lost), len(poller.task_ids)) == (0, len(waiting)), (
            f"{len(lost)} of {PAIRS} answers said 'pending, no callback', "
            f"{len(poller.task_ids)} tasks for {len(waiting)} waiters; "
            f"answers (state, callback?): {dict(shapes)}")
