"""Blueprints, one module per resource; they reach the engine and settings through here."""

from __future__ import annotations

from flask import current_app

from async_api.engine import Engine
from async_api.settings import Settings


def engine() -> Engine:
    return current_app.extensions["async_api.engine"]


def settings() -> Settings:
    return current_app.extensions["async_api.settings"]
