"""Greets by name: the smallest useful task (mirrors example-tasks/hello).

It also shows the helpers: a log line, and a count of greetings per name
kept in kv, stamped with the attempt that made it.
"""

from dataclasses import dataclass

import weft_sdk
from weft_sdk import TaskError, kv, log


@dataclass
class Input:
    name: str = "world"


@dataclass
class Output:
    greeting: str


@weft_sdk.task
def hello(input: Input) -> Output:
    if not input.name:
        raise TaskError("invalid_input", "name must not be empty")
    ctx = weft_sdk.context()
    key = f"greetings/{input.name}"
    count = (kv.get(key, int) or 0) + 1
    kv.set(key, count)
    log.info(f"greeting {input.name} (greeting number {count}, attempt {ctx.attempt} of step {ctx.step_id})")
    return Output(greeting=f"Hello, {input.name}!")
