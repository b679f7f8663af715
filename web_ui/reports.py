"""Reports: traffic, service level, answer speed, heat map, Erlang C staffing, CSV."""
from flask import Blueprint

bp = Blueprint("reports", __name__)
