"""Changing the configuration in force: reload config.json, put a document or a section.

A refused document changes nothing and comes back with the field named; an accepted one
is saved and applied without a restart: only the lines whose settings changed restart.
"""
import copy
import threading

from .config import LIST_SECTIONS, SINGLE_SECTIONS
from .config import validate as validate_config
from .config import warnings as config_warnings
from .errors import ConfigError, ControlError, PromptError
from .prompts import ensure_prompts

CONFIG_SECTIONS = SINGLE_SECTIONS + LIST_SECTIONS
RELOAD_TIMEOUT = 60  # lines being restarted are waited for


class Configurator:
    """Loads, validates, saves and applies the configuration for the engine."""

    def __init__(self, ctx, store, call_in_loop, start_lines):
        self.ctx = ctx
        self.store = store
        self._call_in_loop = call_in_loop  # run a function on the loop and wait for it
        self._start_lines = start_lines  # start runners for the lines of a list that have none
        self._lock = threading.Lock()  # one configuration change at a time

    def load(self):
        """Read the configuration at start (the last good one if config.json is refused)."""
        self.ctx.config = self.store.load()
        ensure_prompts(self.ctx.config, self.ctx.data_dir)
        self.ctx.operators.update(self.ctx.config["operators"])

    def reload(self):
        """Re-read config.json; restart only the lines whose settings changed (loop thread)."""
        new = self.store.load()
        if self.store.problem:
            raise ControlError(self.store.problem)
        ensure_prompts(new, self.ctx.data_dir)
        old_lines = {line["id"]: line for line in self.ctx.config["lines"]}
        new_lines = {line["id"]: line for line in new["lines"] if line.get("enabled", True)}
        self.ctx.board.stop_changed(old_lines, new_lines)
        notifications_changed = new["notifications"] != self.ctx.config["notifications"]
        self.ctx.config = new
        self.ctx.operators.update(new["operators"])
        if notifications_changed:
            self.ctx.notifier.restart()
        self._start_lines([line for line in new["lines"] if line["id"] not in self.ctx.board.runners])
        return {"lines": sorted(new_lines)}

    def put_config(self, document=None, section=None, value=None):
        """Validate and apply a whole configuration, or one section of the one in force.

        Called on a control thread: prompts are spoken here (slow), the save and reload
        happen on the loop. A refused document changes nothing and comes back with the
        field named.
        """
        with self._lock:
            if document is None:
                document = self._call_in_loop(lambda: copy.deepcopy(self.ctx.config))
                document[section] = value
            try:
                document = validate_config(document)
                ensure_prompts(document, self.ctx.data_dir)
            except ConfigError as err:
                return {"saved": False, "field": err.field, "message": err.message}
            except PromptError as err:
                return {"saved": False, "field": "prompts", "message": str(err)}
            self._call_in_loop(self.store.save, document)
            self._call_in_loop(self.reload, timeout=RELOAD_TIMEOUT)
            return {"saved": True, "warnings": config_warnings(document)}

    def config_document(self):
        """The configuration in force, its warnings and why config.json is not it (if so)."""
        config = self.ctx.config
        return {"config": copy.deepcopy(config), "warnings": config_warnings(config), "problem": self.store.problem}

    def warnings(self):
        """What is odd but allowed in the configuration in force."""
        return config_warnings(self.ctx.config)
