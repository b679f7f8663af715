"""Users and API tokens: accounts, roles, languages."""
from flask import Blueprint

bp = Blueprint("users", __name__)
