"""What a test counts in a stack's effects ledger: one row per completed execution of a step
(workers/ledger.py), so "ran once" can be proved whatever was killed. Part of Stack."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workers import ledger
from workers.functions import canonical


class LedgerChecks:
    """Stack's ledger counts; `ledger_path` is the stack's."""

    ledger_path: Path

    def ran(self, bodies: Iterable[Any], step: str = "foo") -> Counter:
        """How many completed executions of `step` the ledger holds for each job body."""
        keys = {canonical(body) for body in bodies}
        return Counter(key for key, _ in ledger.rows(step, self.ledger_path) if key in keys)

    def worker_pids(self, step: str = "foo", bodies: Iterable[Any] | None = None) -> set[int]:
        """The worker processes that ran `step` (for these job bodies only, if given)."""
        keys = None if bodies is None else {canonical(body) for body in bodies}
        return {pid for key, pid in ledger.rows(step, self.ledger_path)
                if keys is None or key in keys}
