"""Caller cards: every call from a number, name, status, notes, tags, reminders."""
from flask import Blueprint

bp = Blueprint("contacts", __name__)
