"""gunicorn.conf.py's hook in each gateway worker process."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT

# Runs the hook as gunicorn would once the app is loaded, in a process of its own: the hook
# patches gunicorn and freezes that process's heap.
HOOK = """
import gc, runpy, types
hooks = runpy.run_path("gunicorn.conf.py")
before = gc.get_freeze_count()
hooks["post_worker_init"](types.SimpleNamespace())
print(before, gc.get_freeze_count())
"""


def test_a_gateway_worker_freezes_what_start_up_built():
    """post_worker_init ends with gc.freeze(): objects that live as long as the process are
    no longer walked by full collections, which paused every request of a worker for 40-120 ms
    under load (PERFORMANCE.md, "Overload", seventh session)."""
    answer = subprocess.run([sys.executable, "-c", HOOK], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    before, after = map(int, answer.stdout.split())
    assert before == 0
    assert after > 1000
