"""Secrets of the tenant, for a task that truly needs a value.

Prefer the step's ``http.headers``, which the host adds to requests without
the task seeing the value. A value read here is redacted from the attempt's
logs, output and errors, but the task can still send it anywhere its step
may reach.
"""

from __future__ import annotations

from typing import Optional

from wit_world.imports import secrets as _wit


def get(name: str) -> Optional[str]:
    """The value of the secret ``name`` if the step lists it in
    ``secrets:``; ``None`` otherwise."""
    return _wit.get(name)
