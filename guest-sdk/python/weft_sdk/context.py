"""The identity of the attempt being run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from wit_world.imports import context as _wit


@dataclass(frozen=True)
class Context:
    """Which tenant, workflow, run, step and attempt this is."""

    tenant: str
    """The tenant that owns the run."""
    workflow: str
    """The workflow's name."""
    run_id: str
    """The run's id."""
    step_id: str
    """The step's id within the workflow."""
    attempt: int
    """1 for the first attempt, 2 for the first retry, and so on."""
    item_index: Optional[int]
    """For a ``for_each`` step, the index of this attempt's item."""


def context() -> Context:
    """Returns the identity of the current attempt."""
    info = _wit.current()
    return Context(
        tenant=info.tenant,
        workflow=info.workflow,
        run_id=info.run_id,
        step_id=info.step_id,
        attempt=info.attempt,
        item_index=info.item_index,
    )
