"""The WSGI entry point: `gunicorn wsgi:app`."""

from async_api.app import create_app

app = create_app()
