"""Queues: groups, strategy, timeouts, announcements, music on hold, call-back key."""
from flask import Blueprint

bp = Blueprint("queues", __name__)
