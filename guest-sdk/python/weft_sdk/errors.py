"""The error a task raises, and the errors the SDK's helpers raise."""

from __future__ import annotations


class TaskError(Exception):
    """Why a task failed, and whether another attempt could succeed.

    Raise it from a task to end the attempt as ``guest_error`` with this
    ``code`` and ``message``. The ``code`` is short and stable
    (``card_declined``, ``out_of_stock``): workflows branch and retry
    policies filter on it. The ``message`` is for people. ``retryable`` is
    the task's own judgement: ``False`` for a failure another attempt would
    not fix (bad input, a business rule said no), ``True`` for a transient
    one (a dependency timed out); the step's retry policy decides how often
    and how far apart.
    """

    code: str
    message: str
    retryable: bool

    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable

    @classmethod
    def transient(cls, code: str, message: str) -> "TaskError":
        """A retryable error, like Rust's ``TaskError::retryable``."""
        return cls(code, message, retryable=True)

    def __repr__(self) -> str:
        return f"TaskError({self.code!r}, {self.message!r}, retryable={self.retryable!r})"


class KvError(TaskError):
    """A kv call was refused, or a stored value did not decode.

    It is a :class:`TaskError` with code ``kv_error``, retryable only when
    the store was unavailable, so a task that does not catch it fails the
    attempt the way the Rust SDK's ``?`` does. ``reason`` says which cap
    was hit: ``invalid_key``, ``value_too_large``, ``too_many_writes``,
    ``unavailable``, ``decode`` or ``encode``.
    """

    reason: str

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__("kv_error", message, retryable)
        self.reason = reason
