"""Serves Swagger UI's files from the swagger-ui-bundle package, so /docs needs no CDN."""

from flask import Blueprint
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"

blp = Blueprint("docs_assets", __name__, static_folder=str(swagger_ui_path),
                static_url_path=ASSETS_URL.rstrip("/"))
