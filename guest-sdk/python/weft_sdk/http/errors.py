"""Why an outbound request gave the task no response it can use, and the
task error code each kind of failure carries.

Every class here is a :class:`~weft_sdk.TaskError`, so a task that lets one
propagate fails its attempt with the same code and retryable flag as a Rust
task whose ``HttpError`` reaches ``?`` (``guest-sdk/src/http/error.rs``):

- :class:`Refused`: ``http_refused``, not retryable
- :class:`Limit`: ``http_limit``, not retryable
- :class:`Timeout`: ``http_timeout``, retryable
- :class:`Failed`: ``http_failed``, retryable
- :class:`StatusError`: ``http_status``, retryable for 5xx and 429
- :class:`InvalidUrl`: ``http_invalid_url``, not retryable
- :class:`TooManyRedirects`: ``http_too_many_redirects``, not retryable

This module does not touch the ``wasi:http`` bindings: a ``wasi:http``
``error-code`` arrives here as its case's name (``HttpRequestDenied``), so
the mapping can be unit-tested on the host.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import TaskError


class HttpError(TaskError):
    """A request failed; the subclass says how. Catch this to handle any
    HTTP failure, or a subclass for one kind."""

    CODE = "http_failed"
    """The task error code of the class."""
    RETRYABLE = False
    """Whether another attempt could succeed."""

    def __init__(self, message: str, retryable: Optional[bool] = None) -> None:
        super().__init__(self.CODE, message, self.RETRYABLE if retryable is None else retryable)


class InvalidUrl(HttpError):
    """The URL could not be parsed, or is not ``http``/``https``; or a
    header is not valid."""

    CODE = "http_invalid_url"


class Refused(HttpError):
    """The host would not send it: not on the step's ``http.allow`` list,
    or to an address that is not allowed (loopback, private, link-local).
    The attempt's log says why."""

    CODE = "http_refused"


class Limit(HttpError):
    """A cap of the step was reached: requests, bytes sent or received."""

    CODE = "http_limit"


class Timeout(HttpError):
    """No connection, answer or body bytes came in time."""

    CODE = "http_timeout"
    RETRYABLE = True


class Failed(HttpError):
    """Anything else on the way: connection refused or reset, TLS, DNS, a
    malformed answer, an answer that is not the JSON expected."""

    CODE = "http_failed"
    RETRYABLE = True


class TooManyRedirects(HttpError):
    """More redirects than the request follows."""

    CODE = "http_too_many_redirects"

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} redirects")
        self.limit = limit


class StatusError(HttpError):
    """The server answered with an error status, from
    :meth:`Response.raise_for_status`. Retryable for 5xx and 429."""

    CODE = "http_status"

    status: int
    """The status code, 400 to 599."""
    body: str
    """The start of the response body, for the message."""

    def __init__(self, status: int, body: str = "") -> None:
        message = f"the server answered {status}: {body}" if body else f"the server answered {status}"
        super().__init__(message, retryable=status >= 500 or status == 429)
        self.status = status
        self.body = body


# Which `wasi:http` `error-code` cases are which kind of failure, as in
# guest-sdk/src/http/error.rs; every other case is `Failed`.
_KINDS: dict[str, type[HttpError]] = {
    "HttpRequestDenied": Refused,
    "DestinationIpProhibited": Refused,
    "HttpRequestBodySize": Limit,
    "HttpResponseBodySize": Limit,
    "ConnectionLimitReached": Limit,
    "DnsTimeout": Timeout,
    "ConnectionTimeout": Timeout,
    "ConnectionReadTimeout": Timeout,
    "HttpResponseTimeout": Timeout,
    "HttpRequestUriInvalid": InvalidUrl,
}


def describe(code: Any) -> str:
    """A generated ``error-code`` value as text: its case name, and its
    payload when it has one (``HttpResponseBodySize(1024)``)."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return name if value is None else f"{name}({value!r})"


def from_code(case: str, url: str) -> HttpError:
    """The error for the ``wasi:http`` ``error-code`` case ``case`` (as
    :func:`describe` gives it, payload and all) of a request to ``url``."""
    kind = _KINDS.get(case.split("(", 1)[0], Failed)
    if kind is Refused:
        return Refused(f"the host refused the request to {url} ({case}); the attempt's log says why")
    if kind is Limit:
        return Limit(f"the request to {url} reached a cap of the step ({case}); the attempt's log says which")
    if kind is Timeout:
        return Timeout(f"the request to {url} timed out ({case})")
    if kind is InvalidUrl:
        return InvalidUrl(f"{url} is not a valid request URL")
    return Failed(f"the request to {url} failed: {case}")


def from_text(text: str, url: str) -> HttpError:
    """The error for a body-stream failure the host gave as text only.

    wasmtime-wasi-http (48) hands a body's errors to the guest as plain
    ``wasi:io`` errors without an ``error-code``; their text is the host's
    description, which says which cap or timeout it was.
    """
    why = f"reading the answer of {url} failed: {text}"
    if "body size exceeds" in text:
        return Limit(why)
    if "timeout" in text or "timed out" in text:
        return Timeout(why)
    return Failed(why)
