"""Serves Swagger UI's files from the swagger-ui-bundle package, so /docs needs no CDN."""

from flask import Blueprint, Flask, Response, request
from swagger_ui_bundle import swagger_ui_path

PAGE = "/docs"
ASSETS_URL = "/docs/assets/"
# The page runs Swagger UI's inline script, so no script policy; but no other site may frame
# it, where a click could be taken for one on "Try it out" with the token typed into it.
NO_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY",
              "X-Content-Type-Options": "nosniff"}

blp = Blueprint("docs_assets", __name__, static_folder=str(swagger_ui_path),
                static_url_path=ASSETS_URL.rstrip("/"))


def install(app: Flask) -> None:
    """The page (flask-smorest's) and its files are never framed."""

    @app.after_request
    def forbid_framing(response: Response) -> Response:
        if request.path == PAGE or request.path.startswith(ASSETS_URL):
            response.headers.update(NO_FRAMING)
        return response
