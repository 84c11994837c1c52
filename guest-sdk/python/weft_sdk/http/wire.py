"""One request over ``wasi:http/outgoing-handler``, blocking.

The request is handed to the host first and its body written after (so a
body larger than the host's buffer streams instead of blocking), then the
response's head is awaited with ``pollable.block()`` and its whole body
read. Resources are released child first (a stream before its body, a body
before its response, a pollable before its future), as the component model
requires.

This is the only module of the SDK that imports the ``wasi:http``
bindings; ``weft_sdk.http`` imports it on the first request, so the rest of
the SDK loads without them (its unit tests run on the host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import SplitResult

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler, streams
from wit_world.imports import wasi_http_types as wit

from .errors import Failed, HttpError, InvalidUrl, describe, from_code, from_text

WRITE_CHUNK = 4096
"""The most bytes one ``wasi:io`` write may carry."""

READ_CHUNK = 64 * 1024
"""The most bytes asked for in one read."""

_METHODS = {
    "GET": wit.Method_Get,
    "HEAD": wit.Method_Head,
    "POST": wit.Method_Post,
    "PUT": wit.Method_Put,
    "DELETE": wit.Method_Delete,
    "CONNECT": wit.Method_Connect,
    "OPTIONS": wit.Method_Options,
    "TRACE": wit.Method_Trace,
    "PATCH": wit.Method_Patch,
}


@dataclass
class Answer:
    """A response, read to its end."""

    status: int
    headers: list[tuple[str, bytes]]
    body: bytes


def send(
    method: str,
    url: SplitResult,
    headers: list[tuple[str, bytes]],
    body: bytes,
    timeout: Optional[float],
    shown: str,
) -> Answer:
    """Sends one request and reads its whole answer; ``shown`` is the URL
    for messages (without its query)."""
    try:
        fields = wit.Fields.from_list(headers)
    except Err as e:
        raise InvalidUrl(f"a header of the request to {shown} is not valid: {describe(e.value)}") from None
    request = wit.OutgoingRequest(fields)
    try:
        request.set_method(_METHODS[method]() if method in _METHODS else wit.Method_Other(method))
        request.set_scheme(wit.Scheme_Http() if url.scheme == "http" else wit.Scheme_Https())
        request.set_authority(url.netloc)
        request.set_path_with_query((url.path or "/") + (f"?{url.query}" if url.query else ""))
    except Err:
        request.__exit__(None, None, None)
        raise InvalidUrl(f"{shown} is not a valid request URL") from None
    outgoing = request.body()
    options = wit.RequestOptions()
    if timeout is not None:
        nanos = max(0, int(timeout * 1e9))
        # A host may not support a timeout; the step's own caps apply anyway.
        for set_timeout in (
            options.set_connect_timeout,
            options.set_first_byte_timeout,
            options.set_between_bytes_timeout,
        ):
            try:
                set_timeout(nanos)
            except Err:
                pass
    try:
        future = outgoing_handler.handle(request, options)
    except Err as e:
        outgoing.__exit__(None, None, None)
        raise from_code(describe(e.value), shown) from None
    with future:
        # A body the host stops taking (a refusal, a cap) is not the error to
        # report: the response future says what happened.
        written = _write_body(outgoing, body)
        response = _wait(future, shown)
    if written is not None:
        response.__exit__(None, None, None)
        raise written
    with response:
        status = response.status()
        with response.headers() as fields:
            entries = fields.entries()
        with response.consume() as incoming:
            with incoming.stream() as stream:
                content = _read_all(stream, shown)
    return Answer(status=status, headers=entries, body=content)


def _write_body(outgoing: wit.OutgoingBody, body: bytes) -> Optional[HttpError]:
    """Writes the whole body and finishes it; an error only when the host
    would not take it for a reason the response will not tell."""
    try:
        stream = outgoing.write()
    except Err:
        stream = None
    if stream is not None:
        taken = True
        with stream:
            for at in range(0, len(body), WRITE_CHUNK):
                try:
                    stream.blocking_write_and_flush(body[at : at + WRITE_CHUNK])
                except Err:
                    taken = False
                    break
        if not taken:
            outgoing.__exit__(None, None, None)
            return None
    try:
        wit.OutgoingBody.finish(outgoing, None)
    except Err as e:
        return Failed(f"the request body could not be finished: {describe(e.value)}")
    return None


def _wait(future: wit.FutureIncomingResponse, shown: str) -> wit.IncomingResponse:
    """Blocks until the response's head (or its failure) is in."""
    while True:
        answer = future.get()
        if answer is None:
            with future.subscribe() as ready:
                ready.block()
            continue
        assert isinstance(answer, Ok), "a response future is read once"
        inner = answer.value
        if isinstance(inner, Err):
            raise from_code(describe(inner.value), shown)
        return inner.value


def _read_all(stream: streams.InputStream, shown: str) -> bytes:
    """The stream's bytes to its end."""
    chunks = []
    while True:
        try:
            chunks.append(stream.blocking_read(READ_CHUNK))
        except Err as e:
            failure = e.value
            if isinstance(failure, streams.StreamError_Closed):
                return b"".join(chunks)
            with failure.value as error:
                code = wit.http_error_code(error)
                text = error.to_debug_string()
            raise (from_code(describe(code), shown) if code is not None else from_text(text, shown)) from None
