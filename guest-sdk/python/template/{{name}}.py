"""The {{name}} task: greets by name.

Build it into a component and try it (see README.md):

    path/to/weft/guest-sdk/python/build.sh {{name}}.py {{name}}.wasm
    weft task run {{name}}.wasm --input '{"name": "Ada"}'
"""

from dataclasses import dataclass

import weft_sdk
from weft_sdk import TaskError, log


@dataclass
class Input:
    """The step's input; a field without a default is required."""

    name: str = "world"


@dataclass
class Output:
    """The step's output."""

    greeting: str


@weft_sdk.task
def {{name}}(input: Input) -> Output:
    if not input.name:
        # Not worth retrying: the same input fails the same way.
        raise TaskError("invalid_input", "name must not be empty")
    log.info(f"greeting {input.name} on attempt {weft_sdk.context().attempt}")
    return Output(greeting=f"Hello, {input.name}!")
