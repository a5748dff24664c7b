"""The contract between gateway and workers holds: what the gateway starts, a worker of the
right group registers, and the workers run without Flask. No process needed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from async_api import contract
from async_api.contract import DurableFunction
from async_api.ids import ID_PATTERN, NEW_ID_PATTERN
from workers.functions import GROUPS

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "src" / "async_api").rglob("*.py"), *(ROOT / "workers").glob("*.py")])


def contract_functions_named_in(path: Path) -> set[DurableFunction]:
    """The durable functions a module names as `contract.NAME` (the only way code names one)."""
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "contract"):
            value = getattr(contract, node.attr)
            if isinstance(value, DurableFunction):
                named.add(value)
    return named


def registered_names(group: str) -> set[str]:
    """The names a worker of `group` registers its functions under (the SDK uses __name__)."""
    return {function.__name__ for function in GROUPS[group]}


@pytest.mark.parametrize("function", contract.FUNCTIONS, ids=lambda f: f.name)
def test_every_contract_function_is_registered_by_its_group(function):
    assert function.group in contract.GROUPS
    assert function.name in registered_names(function.group)


def test_the_workers_register_nothing_the_contract_does_not_name():
    assert set(GROUPS) == set(contract.GROUPS)
    in_contract = {(function.group, function.name) for function in contract.FUNCTIONS}
    registered = {(group, name) for group in GROUPS for name in registered_names(group)}
    assert registered == in_contract


def test_everything_the_gateway_and_workflows_start_is_in_the_contract():
    started = set().union(*(contract_functions_named_in(path) for path in SOURCES))
    # the routes start these; workflows start square, query_orders and build_report
    assert started == set(contract.FUNCTIONS)


def test_jobs_are_started_only_through_jobs_start():
    """One way to start a job: every job gets the same deadline and the job tag."""
    callers = [path.relative_to(ROOT).as_posix() for path in SOURCES
               if path.name != "engine.py" and ".invoke(" in path.read_text()]
    assert callers == ["src/async_api/jobs.py"]


@pytest.mark.parametrize("process_file", ["Procfile", "supervisord.conf"])
def test_the_deploy_and_the_local_run_start_every_group(process_file):
    lines = (ROOT / process_file).read_text().splitlines()
    for group in contract.GROUPS:
        assert any(line.endswith(f"-m workers --group {group}") for line in lines), group


@pytest.mark.parametrize("module", ["workers.functions", "workers.__main__"])
def test_the_workers_do_not_import_flask(module):
    program = (f"import sys, {module}; "
               "print(sorted(m for m in ('flask', 'flask_smorest', 'werkzeug') "
               "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_service_ids_can_be_looked_up_but_never_chosen_by_a_client():
    for service_id in (contract.order_job_id("A1"), contract.approval_id("A1"),
                       contract.quote_job_id("widget-1", 3), contract.report_job_id("job-1")):
        assert ID_PATTERN.fullmatch(service_id)
        assert not NEW_ID_PATTERN.fullmatch(service_id)
