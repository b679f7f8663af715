"""Menus: the IVR editor, a readable tree that edits a flow without JSON."""
from flask import Blueprint

bp = Blueprint("flows", __name__)
