"""Hours: time conditions, holidays and special days, the manual closed switch, campaigns."""
from flask import Blueprint

bp = Blueprint("hours", __name__)
