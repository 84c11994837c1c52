"""Structured log lines, stored with the attempt.

``print`` works too: what a task writes to stdout and stderr is kept with
the attempt, capped, next to these lines.
"""

from __future__ import annotations

from wit_world.imports import log as _wit


def trace(message: str) -> None:
    """Logs ``message`` at trace level."""
    _wit.log(_wit.Level.TRACE, message)


def debug(message: str) -> None:
    """Logs ``message`` at debug level."""
    _wit.log(_wit.Level.DEBUG, message)


def info(message: str) -> None:
    """Logs ``message`` at info level."""
    _wit.log(_wit.Level.INFO, message)


def warn(message: str) -> None:
    """Logs ``message`` at warn level."""
    _wit.log(_wit.Level.WARN, message)


def error(message: str) -> None:
    """Logs ``message`` at error level."""
    _wit.log(_wit.Level.ERROR, message)
