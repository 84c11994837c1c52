"""Makes one HTTP request and returns the answer: the Python twin of
example-tasks/http_fetch, with the same input and output.

Input::

    {"method": "POST", "url": "https://api.example.com/v1/charges",
     "json": {"amount_cents": 4999}, "headers": {"idempotency-key": "A-1001"},
     "expect": [200, 201], "secrets": ["name"]}

``method`` defaults to ``GET``; ``json`` (a JSON body) or ``text`` (a text
body) is sent when given. Without ``expect``, ``raise_for_status()`` fails
the step on a 4xx or 5xx with code ``http_status`` (retryable for 5xx and
429); with it, a status outside the list does. Any other HTTP failure
(``http_refused``, ``http_timeout``, ...) is left to fail the step.

The output is the answer (``status``, ``url``, ``content_type``, ``body``:
parsed JSON when it is JSON, text otherwise) and what the task itself
could see: its environment and the secrets named in ``secrets``. The tests
use that to show that a header the host put into a request never reached
the task.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import weft_sdk
from weft_sdk import http, secrets


@dataclass
class Fetch:
    url: str
    method: str = "GET"
    json: Any = None
    text: Optional[str] = None
    headers: dict[str, str] = field(default_factory=dict)
    expect: Optional[list[int]] = None
    secrets: list[str] = field(default_factory=list)


@weft_sdk.task
def http_fetch(fetch: Fetch) -> dict:
    headers = dict(fetch.headers)
    body = None
    if fetch.text is not None:
        headers["content-type"] = "text/plain; charset=utf-8"
        body = fetch.text.encode()
    if fetch.json is not None:
        response = http.request(fetch.method, fetch.url, headers=headers, json=fetch.json)
    else:
        response = http.request(fetch.method, fetch.url, headers=headers, body=body)
    if fetch.expect is None:
        response.raise_for_status()
    elif response.status not in fetch.expect:
        raise http.StatusError(response.status, response.text()[: http.STATUS_BODY_SHOWN])
    content_type = response.header("content-type")
    try:
        shown: Any = response.json() if content_type and "json" in content_type else response.text()
    except http.Failed:
        shown = response.text()
    return {
        "status": response.status,
        "url": response.url,
        "content_type": content_type,
        "body": shown,
        "seen": {
            "environment": dict(os.environ),
            "secrets": {name: secrets.get(name) for name in fetch.secrets},
        },
    }
