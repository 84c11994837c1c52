"""Misbehaves on request, for the sandbox's limit tests with a Python guest.

Input: {"mode": MODE, ...} where MODE is
  spin         loops forever without calling the host
  allocate     allocates (and keeps) 1 MiB after 1 MiB, never freeing
  fail         raises TaskError(code, message, retryable) from the input
  raise        raises a plain exception (a ValueError) with `message`
  burn         does `iterations` rounds of arithmetic and returns the result
"""

from dataclasses import dataclass
from typing import Optional

import weft_sdk
from weft_sdk import TaskError


@dataclass
class Request:
    mode: str
    code: str = "misbehaved"
    message: str = "the misbehave task failed on purpose"
    retryable: bool = False
    iterations: int = 0


@dataclass
class Burned:
    result: int


@weft_sdk.task
def misbehave(request: Request) -> Optional[Burned]:
    if request.mode == "spin":
        n = 0
        while True:
            n = (n + 1) & 0xFFFF
    if request.mode == "allocate":
        hoard = []
        while True:
            hoard.append(bytearray(b"\xab" * (1 << 20)))
    if request.mode == "fail":
        raise TaskError(request.code, request.message, retryable=request.retryable)
    if request.mode == "raise":
        raise ValueError(request.message)
    if request.mode == "burn":
        x = 0x9E3779B97F4A7C15
        for i in range(request.iterations):
            x = ((x << 5 | x >> 59) ^ i) * 0x100000001B3 & 0xFFFFFFFFFFFFFFFF
        return Burned(result=x)
    raise TaskError("invalid_input", f"unknown mode {request.mode!r}")
