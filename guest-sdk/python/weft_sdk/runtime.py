"""The ``@task`` decorator and the export the engine calls.

The build (`weft_build.py`) makes a small entry module that imports
the task's file, so its ``@task`` registers the function, and exposes
:class:`WitWorld`, whose ``run`` is the component's export.
"""

from __future__ import annotations

import inspect
import json
import sys
import traceback
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from .convert import ConversionError, from_json, to_json
from .errors import TaskError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Registered:
    function: Callable[..., Any]
    input_type: Any
    takes_input: bool


_TASK: Optional[_Registered] = None


def task(function: F) -> F:
    """Marks ``function`` as this component's task.

    The function takes at most one parameter, the step's input, converted
    from JSON to its type hint (a dataclass, ``dict``, ``list[int]``, ...;
    ``Any`` or no hint for the raw ``json.loads`` value). What it returns is
    converted to JSON (dataclasses become objects). Raise :class:`TaskError`
    to fail the attempt with a code; any other exception fails it with the
    non-retryable code ``exception``. An input that does not fit the type
    fails it with the non-retryable code ``invalid_input``.

    Use it once per task file; the function is returned unchanged, so it
    can still be called directly.
    """
    global _TASK
    if _TASK is not None:
        raise RuntimeError(
            f"@weft_sdk.task is used twice: on {_TASK.function.__qualname__} and on "
            f"{function.__qualname__}; a component has one task"
        )
    parameters = list(inspect.signature(function).parameters.values())
    if len(parameters) > 1:
        raise TypeError(
            f"the task {function.__qualname__} takes {len(parameters)} parameters; "
            "it must take one (the input) or none"
        )
    input_type: Any = Any
    if parameters:
        hints = typing.get_type_hints(function)
        input_type = hints.get(parameters[0].name, Any)
    _TASK = _Registered(function, input_type, bool(parameters))
    return function


def _fail(code: str, message: str, retryable: bool = False) -> Any:
    """The WIT error the export raises."""
    from componentize_py_types import Err

    try:
        # The `python-task` world also imports `wasi:http/types`, so
        # componentize-py names weft's `types` after its package.
        from wit_world.imports.weft_task_types import TaskError as WitTaskError
    except ImportError:  # bindings of the plain `task` world (the SDK's unit tests)
        from wit_world.imports.types import TaskError as WitTaskError

    return Err(WitTaskError(code=code, message=message, retryable=retryable))


def dispatch(input: str) -> str:
    """Decodes the input, calls the registered task and encodes its output.

    Raises the WIT ``task-error`` (as componentize-py's ``Err``) when it
    fails.
    """
    registered = _TASK
    if registered is None:
        raise _fail(
            "no_task",
            "the component has no task: decorate the task's function with @weft_sdk.task",
        )
    try:
        if registered.takes_input:
            try:
                argument = from_json(json.loads(input), registered.input_type)
            except (ValueError, ConversionError) as e:
                raise TaskError(
                    "invalid_input", f"the input does not match what the task expects: {e}"
                ) from None
            result = registered.function(argument)
        else:
            result = registered.function()
        try:
            return json.dumps(to_json(result), separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise TaskError(
                "invalid_output", f"the task's output cannot be encoded as JSON: {e}"
            ) from None
    except TaskError as e:
        raise _fail(e.code, e.message, e.retryable) from None
    except MemoryError:
        # Not the task's error: the host refused to grow its memory. Letting
        # it escape traps the instance, which the host reports as
        # `memory_limit`, the outcome a Rust task gets for the same thing.
        raise
    except Exception as e:  # noqa: BLE001 - every failure must become a task error
        # The traceback goes to stderr, which is stored with the attempt.
        traceback.print_exc(file=sys.stderr)
        raise _fail("exception", f"{type(e).__name__}: {e}") from None


class WitWorld:
    """The component's export, as componentize-py expects it."""

    def run(self, input: str) -> str:
        """Runs one attempt: ``input`` and the result are JSON text."""
        return dispatch(input)
