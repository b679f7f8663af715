"""The REST API under /api/v1 with token authentication and its OpenAPI description."""
from flask import Blueprint

bp = Blueprint("api", __name__)
