"""Durable file writes shared by the configuration, prompts, recordings and backups.

A leaf module: it imports nothing of the appliance, so every other module may use it.
"""
import os


def write_atomically(path, text):
    """Write ``text`` to ``path`` through a fsynced temp file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = f"{path}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_directory(directory)


def remove_quietly(path):
    """Delete ``path`` if it is there (a temp file left by a failed write)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def fsync_directory(directory):
    """Make a rename or a new file in ``directory`` durable (its entry is on disk when this returns)."""
    dir_fd = os.open(directory or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
