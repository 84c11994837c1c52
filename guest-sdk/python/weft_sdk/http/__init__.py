"""Outbound HTTP from a task, over ``wasi:http``, blocking, with JSON
helpers::

    from weft_sdk import http

    charge = http.post(
        "https://payments.example.com/v1/charges",
        json={"amount_cents": 1200, "currency": "EUR"},
    ).raise_for_status().json()

A request goes out only if the step's ``http.allow`` list lets it, within
the step's caps; anything else raises :class:`Refused` or :class:`Limit`,
and the attempt's log says why. Credentials belong in the step's
``http.headers``, which the host adds to matching requests: the task never
sees them. Every failure is an :class:`HttpError`, a
:class:`~weft_sdk.TaskError` with the code and retryable flag the Rust SDK
uses (see :mod:`weft_sdk.http.errors`), so a task that does not catch it
fails the attempt with that code.

Redirects (301, 302, 303, 307, 308) are followed, at most
``max_redirects`` of them (5 by default); every hop is a new request the
host checks against the allow-list, so a redirect never leads anywhere the
step may not go. A 303, and a 301 or 302 answering a ``POST``, continue as
a ``GET`` without the body, as browsers do; an ``Authorization`` header the
task set is dropped when a redirect leaves the origin.

The whole answer is read before the call returns (the step's
``http.limits`` cap how much that can be).
"""

from __future__ import annotations

import json as _json
from typing import Any, Mapping, Optional, Sequence, TypeVar, Union, overload
from urllib.parse import SplitResult, urljoin, urlsplit

from ..convert import ConversionError, from_json, to_json
from .errors import (
    Failed,
    HttpError,
    InvalidUrl,
    Limit,
    Refused,
    StatusError,
    Timeout,
    TooManyRedirects,
)

__all__ = [
    "Failed",
    "HttpError",
    "InvalidUrl",
    "Limit",
    "Refused",
    "Response",
    "StatusError",
    "Timeout",
    "TooManyRedirects",
    "delete",
    "get",
    "post",
    "put",
    "request",
]

T = TypeVar("T")

Headers = Union[Mapping[str, Union[str, bytes]], Sequence[tuple[str, Union[str, bytes]]], None]
"""Request headers: a dict, or pairs for a repeated name; values as text or bytes."""

STATUS_BODY_SHOWN = 512
"""The most characters of an error response's body kept in :class:`StatusError`."""

REDIRECTS = (301, 302, 303, 307, 308)
"""The statuses that are followed."""

_NO_JSON = object()


class Response:
    """An answer, read to its end."""

    status: int
    """The status code."""
    headers: dict[str, str]
    """The headers, names in lower case; a repeated header's values are
    joined with ``", "``."""
    body: bytes
    """The whole body."""
    url: str
    """The URL that answered (after redirects), without its query string."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, url: str) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.url = url

    def __repr__(self) -> str:
        return f"<Response {self.status} from {self.url}, {len(self.body)} bytes>"

    @property
    def ok(self) -> bool:
        """Whether the status is below 400."""
        return self.status < 400

    def header(self, name: str) -> Optional[str]:
        """The header ``name`` (any case), or ``None``."""
        return self.headers.get(name.lower())

    def text(self) -> str:
        """The body as text (UTF-8, invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    @overload
    def json(self) -> Any: ...
    @overload
    def json(self, type: type[T]) -> T: ...
    def json(self, type: Any = Any) -> Any:
        """The body decoded from JSON; with ``type`` (a dataclass,
        ``list[str]``, ...) converted to it as a task's input is. A body
        that does not fit raises :class:`Failed`."""
        try:
            return from_json(_json.loads(self.body), type)
        except (ValueError, ConversionError) as e:
            raise Failed(f"the answer of {self.url} is not the JSON expected: {e}") from None

    def raise_for_status(self) -> "Response":
        """Raises :class:`StatusError` on a 4xx or 5xx status; returns the
        response otherwise, so calls chain."""
        if self.status >= 400:
            raise StatusError(self.status, self.text()[:STATUS_BODY_SHOWN])
        return self


def request(
    method: str,
    url: str,
    *,
    headers: Headers = None,
    body: Optional[bytes] = None,
    json: Any = _NO_JSON,
    timeout: Optional[float] = None,
    max_redirects: int = 5,
) -> Response:
    """Sends a request and returns its answer, following redirects.

    ``body`` is sent as is; ``json`` (anything a task may return, such as a
    dataclass) is sent encoded as JSON with its content type; give one or
    neither. ``timeout`` (seconds) bounds connecting, waiting for the answer
    and each wait between two chunks of its body; the step's
    ``http.limits`` still cap it, and the attempt's deadline covers every
    request. ``max_redirects=0`` returns a 3xx as the response.
    """
    method = method.upper()
    pairs = _headers(headers)
    if json is not _NO_JSON:
        if body is not None:
            raise TypeError("give a request either body= or json=, not both")
        body = encode_json(json)
        if not any(name == "content-type" for name, _ in pairs):
            pairs.append(("content-type", b"application/json"))
    content = body if body is not None else b""
    current = parse(url)
    hops = 0
    while True:
        answer = _send(method, current, pairs, content, timeout)
        location = redirect_location(answer)
        if location is None:
            return answer
        if hops == max_redirects:
            if max_redirects == 0:
                return answer
            raise TooManyRedirects(max_redirects)
        hops += 1
        target = resolve(current, location)
        method, pairs, content = follow(method, pairs, content, answer.status, current, target)
        current = target


def get(url: str, *, headers: Headers = None, timeout: Optional[float] = None, max_redirects: int = 5) -> Response:
    """A ``GET`` of ``url``."""
    return request("GET", url, headers=headers, timeout=timeout, max_redirects=max_redirects)


def post(
    url: str,
    *,
    json: Any = _NO_JSON,
    body: Optional[bytes] = None,
    headers: Headers = None,
    timeout: Optional[float] = None,
    max_redirects: int = 5,
) -> Response:
    """A ``POST`` to ``url`` of ``json`` (encoded) or ``body`` (bytes)."""
    return request(
        "POST", url, json=json, body=body, headers=headers, timeout=timeout, max_redirects=max_redirects
    )


def put(
    url: str,
    *,
    json: Any = _NO_JSON,
    body: Optional[bytes] = None,
    headers: Headers = None,
    timeout: Optional[float] = None,
    max_redirects: int = 5,
) -> Response:
    """A ``PUT`` to ``url`` of ``json`` (encoded) or ``body`` (bytes)."""
    return request(
        "PUT", url, json=json, body=body, headers=headers, timeout=timeout, max_redirects=max_redirects
    )


def delete(url: str, *, headers: Headers = None, timeout: Optional[float] = None, max_redirects: int = 5) -> Response:
    """A ``DELETE`` of ``url``."""
    return request("DELETE", url, headers=headers, timeout=timeout, max_redirects=max_redirects)


# The parts below do not call the host, so the unit tests cover them.


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON, as a task's output is encoded."""
    try:
        return _json.dumps(to_json(value), separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as e:
        raise Failed(f"the request body cannot be encoded as JSON: {e}") from None


def parse(url: str) -> SplitResult:
    """``url`` split, if it is an absolute ``http://`` or ``https://`` URL;
    else :class:`InvalidUrl`."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidUrl(f"{url!r} is not a URL: it contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as e:
        raise InvalidUrl(f"{url!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidUrl(f"{url!r} is not an absolute http:// or https:// URL")
    return parts._replace(fragment="")


def shown(url: SplitResult) -> str:
    """The URL without its query string (which may carry credentials), for
    messages."""
    return f"{url.scheme}://{url.netloc}{url.path}"


def resolve(base: SplitResult, location: str) -> SplitResult:
    """``location`` (absolute, scheme-relative, an absolute or a relative
    path) against the URL that answered."""
    return parse(urljoin(base.geturl(), location))


def redirect_location(response: Response) -> Optional[str]:
    """Where a redirect points, if ``response`` is one."""
    if response.status in REDIRECTS:
        return response.header("location")
    return None


def follow(
    method: str,
    headers: list[tuple[str, bytes]],
    body: bytes,
    status: int,
    origin: SplitResult,
    target: SplitResult,
) -> tuple[str, list[tuple[str, bytes]], bytes]:
    """The method, headers and body of the request that follows a redirect
    with ``status`` from ``origin`` to ``target``."""
    if (target.scheme, target.netloc) != (origin.scheme, origin.netloc):
        headers = [(n, v) for n, v in headers if n != "authorization"]
    if (status == 303 or (status in (301, 302) and method == "POST")) and method != "HEAD":
        method, body = "GET", b""
        headers = [(n, v) for n, v in headers if n not in ("content-type", "content-length")]
    return method, headers, body


def _headers(headers: Headers) -> list[tuple[str, bytes]]:
    """The request headers as ``wasi:http`` takes them: lower-case names,
    byte values."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower(), value.encode() if isinstance(value, str) else bytes(value)) for name, value in items]


def _send(
    method: str,
    url: SplitResult,
    headers: list[tuple[str, bytes]],
    body: bytes,
    timeout: Optional[float],
) -> Response:
    """One request, without redirects."""
    from . import wire  # the wasi:http bindings exist only inside a component

    # A known length: the server need not read a chunked body to answer,
    # and the host checks that the body matches it.
    if body or method in ("POST", "PUT", "PATCH"):
        headers = [(n, v) for n, v in headers if n != "content-length"]
        headers.append(("content-length", str(len(body)).encode()))
    where = shown(url)
    answer = wire.send(method, url, headers, body, timeout, where)
    joined: dict[str, str] = {}
    for name, value in answer.headers:
        text = value.decode("latin-1")
        joined[name] = f"{joined[name]}, {text}" if name in joined else text
    return Response(answer.status, joined, answer.body, where)
