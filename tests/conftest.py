"""Fixtures that start real processes and always tear them down."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.support import Stack
from workers.functions import GROUPS

# The shared gateway signs-checks webhooks with this and gives quotes one second.
GATEWAY_ENV = {"WEBHOOK_SECRET": "test-webhook-secret", "QUOTE_TIMEOUT_SECONDS": "1"}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Shared by the tests that harm nothing: one server, one worker per group, one gateway."""
    shared = Stack(tmp_path_factory.mktemp("stack"))
    try:
        shared.start(list(GROUPS), gateway_env=GATEWAY_ENV)
        yield shared
    finally:
        shared.stop()


@pytest.fixture
def make_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """A private stack for tests that kill or restart things; the test starts what it needs."""
    created: list[Stack] = []

    def make(**kwargs) -> Stack:
        private = Stack(tmp_path_factory.mktemp("private"), **kwargs)
        created.append(private)
        return private

    yield make
    for private in created:
        private.stop()


@pytest.fixture
def nonce() -> str:
    """Makes a request body unique to one test, so ledger counts belong to it alone."""
    return uuid.uuid4().hex
