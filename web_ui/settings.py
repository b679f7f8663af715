"""Settings: notifications, blacklist, recording and retention."""
from flask import Blueprint

bp = Blueprint("settings", __name__)
