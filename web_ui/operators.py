"""Operators: endpoints, groups, shifts, wrap-up; their live state, pause and ready."""
from flask import Blueprint

bp = Blueprint("operators", __name__)
