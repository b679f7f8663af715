"""Where the box keeps its data."""
import os

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_data_dir():
    """./var in a source checkout, /var/lib/hotline when installed."""
    if os.path.exists(os.path.join(CHECKOUT, "setup.py")):
        return os.path.join(CHECKOUT, "var")
    return "/var/lib/hotline"


# The processes' sockets in the data directory. Here, in a leaf module, so that the web
# process and the command line name them without importing the engine (and pjsua2).
ENGINE_SOCKET = "engine.sock"
TWIN_SOCKET = "twin.sock"  # hardware/virtual/world.py listens on it
