"""The test-call panel: ring a line, press digits, watch the call move through the flow."""
from flask import Blueprint

bp = Blueprint("testcall", __name__)
