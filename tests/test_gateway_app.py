"""The gateway's Flask subclass (async_api.app.Gateway) answers as plain Flask does.

It only keeps what Flask works out again for every request; these checks compare it with a
plain Flask app, in this process.
"""

from __future__ import annotations

import datetime
import decimal
import uuid

from flask import Flask, jsonify

from async_api.app import Gateway
from tests.support.in_process import offline_gateway

ODD_VALUES = {
    "zeta": 1, "alpha": [1.5, None, True], "unicode": "ünïcode ✓ \u2028",
    "nested": {"b": 2, "a": 1},
    "when": datetime.datetime(2026, 11, 26, 8, 0, tzinfo=datetime.UTC),
    "day": datetime.date(2026, 11, 26), "money": decimal.Decimal("1.10"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def _json_bytes(app: Flask, value: object) -> bytes:
    with app.app_context():
        return jsonify(value).get_data()


def test_json_answers_are_the_bytes_plain_flask_sends():
    for value in (ODD_VALUES, [ODD_VALUES, "x"], "text", 3, None):
        assert _json_bytes(Gateway(__name__), value) == _json_bytes(Flask(__name__), value)


def test_json_with_options_still_goes_through_json_dumps():
    app = Gateway(__name__)

    assert app.json.dumps({"b": 1, "a": 2}, indent=2) == '{\n  "a": 2,\n  "b": 1\n}'


def test_debug_answers_stay_indented():
    app, plain = Gateway(__name__), Flask(__name__)
    app.debug = plain.debug = True

    assert _json_bytes(app, ODD_VALUES) == _json_bytes(plain, ODD_VALUES)


def test_a_function_is_checked_once_and_a_bound_method_every_time():
    app = Gateway(__name__)

    def view() -> str:
        return "ok"

    class Handler:
        def run(self) -> str:
            return "ok"

    assert app.ensure_sync(view) is view and app.ensure_sync(view) is view
    for _ in range(3):
        handler = Handler()
        assert app.ensure_sync(handler.run) == handler.run
    assert list(app._sync) == [view]  # bound methods, new for every call, are not kept


def test_an_async_view_is_still_refused_without_asgiref():
    """Flask runs `async def` views only with its `async` extra; the cache must not hide that."""
    app = Gateway(__name__)

    async def view() -> str:
        return "ok"

    try:
        app.ensure_sync(view)
    except RuntimeError as refused:
        assert "async" in str(refused)
    else:  # asgiref is installed: the view is wrapped, not returned as it is
        assert app.ensure_sync(view) is not view


def test_the_gateway_is_built_on_it():
    gateway = offline_gateway()

    assert isinstance(gateway.application, Gateway)
