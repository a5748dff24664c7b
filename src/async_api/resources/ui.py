"""The dashboard at /ui/: one HTML page, its script and its stylesheet, served as static files.

They hold no data, so they are served without a token (auth.OPEN_PATHS); the script calls the
JSON API with the token the user types, so the API's rules apply to everything it shows. The
Content-Security-Policy lets the page load and call nothing but this gateway: no script from
elsewhere could read the token it keeps.
"""

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
URL = "/ui/"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

blp = Blueprint("ui", __name__, static_folder=str(UI_DIR), static_url_path=URL.rstrip("/"))


@blp.route(URL)
def index() -> Response:
    """The page; /ui redirects here, so that its relative links (app.js, ../jobs) resolve."""
    return send_from_directory(UI_DIR, "index.html")


@blp.after_request
def lock_down(response: Response) -> Response:
    """The page's own headers, on the page and its files alike."""
    response.headers.update(SECURITY_HEADERS)
    return response
