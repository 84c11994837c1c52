"""Write weft tasks as typed Python functions.

A task is a function from its input to its output, marked with
:func:`task`::

    from dataclasses import dataclass
    import weft_sdk

    @dataclass
    class Input:
        name: str = "world"

    @dataclass
    class Output:
        greeting: str

    @weft_sdk.task
    def hello(input: Input) -> Output:
        return Output(greeting=f"Hello, {input.name}!")

Build it into a component with ``guest-sdk/python/build.sh hello.py
hello.wasm``. Logging is :mod:`weft_sdk.log`, the attempt's identity
:func:`context`, tenant-scoped state :mod:`weft_sdk.kv` and secrets
:mod:`weft_sdk.secrets`, outbound requests :mod:`weft_sdk.http`.
"""

from __future__ import annotations

from . import http, kv, log, secrets
from .context import Context, context
from .errors import KvError, TaskError
from .http import HttpError
from .runtime import task

__all__ = ["Context", "HttpError", "KvError", "TaskError", "context", "http", "kv", "log", "secrets", "task"]
