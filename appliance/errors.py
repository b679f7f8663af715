"""Exceptions of the engine layer: one root, leaves that also inherit a builtin."""


class ApplianceError(Exception):
    """Root of every error raised by the engine layer."""


class ConfigError(ApplianceError, ValueError):
    """A configuration was refused; ``field`` names the offending field."""

    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class EngineUnavailable(ApplianceError, ConnectionError):
    """The engine's control socket does not answer."""


class ControlError(ApplianceError, RuntimeError):
    """The engine (or the virtual twin) refused a control request."""


class PromptError(ApplianceError, RuntimeError):
    """A prompt could not be generated or converted."""


class NotifyError(ApplianceError, RuntimeError):
    """A notification could not be delivered (this attempt); the outbox retries it."""


class RecordingError(ApplianceError, OSError):
    """A recording could not be compressed, found or safely reached; the message names the file."""
