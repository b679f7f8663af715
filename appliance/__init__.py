"""The call engine: lines, calls, media, configuration, journal, control API, CLI."""
