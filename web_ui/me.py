"""The operator's own page (mobile-friendly): ready and pause, the current caller's card."""
from flask import Blueprint

bp = Blueprint("me", __name__)
