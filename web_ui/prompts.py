"""Prompts: upload with conversion, text-to-speech, playback in the browser."""
from flask import Blueprint

bp = Blueprint("prompts", __name__)
