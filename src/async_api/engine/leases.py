"""The claims a worker process holds, and until when the server is sure to agree that it does.

A claim on a task is a lease: the server gives it for `ttl` seconds and every heartbeat renews
it. The worker may write checkpoints and complete the task only while its lease is valid *by its
own clock*, counted from the moment it sent the claim or the last heartbeat the server confirmed.
When the server cannot be reached for longer than that (an engine outage), the worker must
assume the server gave the task to someone else: the lease is lost and the work is fenced.
Pure bookkeeping, no I/O, so that it can be tested with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Lease:
    task_id: str
    counter: int
    claim_pid: str  # the process id the task was claimed under (one per claim)
    root_id: str  # the workflow the task runs
    valid_until: float  # by the worker's monotonic clock
    lost: bool = False
    settled: str | None = None  # lost because its job was settled (canceled...) meanwhile
    completing: bool = False  # its run is completing its task (it suspends)


class Leases:
    """Thread-safe: the scheduler thread holds and releases, the heartbeat thread renews."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        # A write checked just before expiry could still reach the server just after it.
        self.margin = min(1.0, ttl_seconds / 5)
        self._clock = clock
        self._lock = threading.Lock()
        self._by_task: dict[str, Lease] = {}
        # Runs dropped with their claims, for the server to hand out again: a drain during
        # which some were did not finish them.
        self.handed_back = 0

    def now(self) -> float:
        return self._clock()

    def hold(self, task_id: str, counter: int, claim_pid: str, root_id: str,
             claimed_at: float) -> None:
        """Records a claim the server granted; `claimed_at` is when the claim was sent."""
        with self._lock:
            self._by_task[task_id] = Lease(task_id, counter, claim_pid, root_id,
                                           claimed_at + self.ttl)

    def get(self, task_id: str) -> Lease | None:
        with self._lock:
            return self._by_task.get(task_id)

    def release(self, task_id: str) -> None:
        with self._lock:
            self._by_task.pop(task_id, None)

    def release_root(self, root_id: str) -> list[Lease]:
        """Forgets every claim of workflow `root_id`: they are no longer heartbeated."""
        with self._lock:
            gone = [lease for lease in self._by_task.values() if lease.root_id == root_id]
            for lease in gone:
                del self._by_task[lease.task_id]
            return gone

    def renewed(self, claim_pid: str, sent_at: float) -> bool:
        """A heartbeat sent at `sent_at` was confirmed by the server; False if the lease had
        lapsed by this clock before the confirmation came, and stays lost.

        Server v0.7.0 renews a claim still marked claimed even past its expiry, and its
        timeout run reads the expired claims in one transaction and hands them out again in
        the next: a heartbeat held in a frozen server's socket, answered at SIGCONT between
        the two, was confirmed while the task went to another worker, and this worker went on
        writing under it (two steps ran twice for one lost claim;
        tests/test_outages.py, frozen-6s). A confirmation that comes while the lease is still
        valid is safe: the server renewed it before it could have expired there."""
        with self._lock:
            now, lapsed = self._clock(), False
            for lease in self._by_task.values():
                if lease.claim_pid == claim_pid and not lease.lost:
                    if now >= lease.valid_until:
                        lease.lost = lapsed = True
                    else:
                        lease.valid_until = max(lease.valid_until, sent_at + self.ttl)
            return not lapsed

    def mark_lost(self, claim_pid: str, settled: str | None = None) -> None:
        """The server no longer knows this claim: it expired and went back to the queue, or
        its job was `settled` (a cancel or a timeout completes the job's task with it)."""
        with self._lock:
            for lease in self._by_task.values():
                if lease.claim_pid == claim_pid:
                    lease.lost, lease.settled = True, settled

    def root_of(self, claim_pid: str) -> str | None:
        with self._lock:
            return next((lease.root_id for lease in self._by_task.values()
                         if lease.claim_pid == claim_pid), None)

    def valid(self, task_id: str) -> bool:
        """Whether the work of this task may still be written to the server."""
        with self._lock:
            lease = self._by_task.get(task_id)
            return (lease is not None and not lease.lost
                    and self._clock() < lease.valid_until - self.margin)

    def held_roots(self) -> set[str]:
        """The workflows whose tasks are held now."""
        with self._lock:
            return {lease.root_id for lease in self._by_task.values()}

    def completing(self, task_id: str) -> None:
        """The run is about to complete this task: from then on the server may no longer
        have the claim, and that is no loss."""
        with self._lock:
            if task_id in self._by_task:
                self._by_task[task_id].completing = True

    def holds(self, claim_pid: str) -> bool:
        """Whether a claim is held and not being completed by its run: one released or being
        completed since a heartbeat read it ends with its run, its task completed."""
        with self._lock:
            return any(lease.claim_pid == claim_pid and not lease.completing
                       for lease in self._by_task.values())

    def claim_pids(self) -> list[str]:
        with self._lock:
            return [lease.claim_pid for lease in self._by_task.values() if not lease.lost]

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_task)
