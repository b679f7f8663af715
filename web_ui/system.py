"""System: backup and restore, disk and retention, logs, engine health, version."""
from flask import Blueprint

bp = Blueprint("system", __name__)
