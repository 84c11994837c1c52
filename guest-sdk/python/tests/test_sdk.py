"""Unit tests of the SDK on the host's CPython, against bindings made with
``componentize-py bindings`` (whose host functions are stubs, so only the
parts that do not call the host are tested here; the Rust tests in
``tests/python_tasks.rs`` run real components).

    componentize-py -d wit -w task bindings /tmp/bindings
    PYTHONPATH=/tmp/bindings:guest-sdk/python python -m unittest discover -s guest-sdk/python/tests
"""

from __future__ import annotations

import enum
import json
import unittest
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from componentize_py_types import Err

import weft_sdk
from weft_sdk import http
from weft_sdk import runtime as task_module
from weft_sdk.convert import ConversionError, from_json, to_json


@dataclass
class Item:
    sku: str
    quantity: int = 1


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Order:
    order_id: str
    items: list[Item]
    note: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    colour: Colour = Colour.RED
    speed: Literal["slow", "fast"] = "slow"


class ConvertTest(unittest.TestCase):
    def test_nested_dataclasses_round_trip(self) -> None:
        raw = {"order_id": "A", "items": [{"sku": "X"}, {"sku": "Y", "quantity": 3}], "colour": "blue"}
        order = from_json(raw, Order)
        self.assertEqual(order.items[1], Item("Y", 3))
        self.assertIs(order.colour, Colour.BLUE)
        self.assertEqual(
            to_json(order),
            {
                "order_id": "A",
                "items": [{"sku": "X", "quantity": 1}, {"sku": "Y", "quantity": 3}],
                "note": None,
                "tags": [],
                "colour": "blue",
                "speed": "slow",
            },
        )

    def test_errors_name_the_place(self) -> None:
        cases = [
            ({"order_id": "A", "items": [{"sku": "X", "qty": 1}]}, "$.items[0]: unknown field 'qty' for Item"),
            ({"order_id": "A"}, "$: missing field 'items' of Order"),
            ({"order_id": "A", "items": [{"sku": 1}]}, "$.items[0].sku: expected a string, found a number"),
            ({"order_id": "A", "items": [], "note": 3}, "$.note: expected a string, found a number"),
            ({"order_id": "A", "items": [], "speed": "warp"}, "$.speed: expected one of ['slow', 'fast']"),
            ({"order_id": "A", "items": [], "colour": "green"}, "$.colour: expected one of ['red', 'blue']"),
            ([], "$: expected an object for Order, found an array"),
        ]
        for raw, expected in cases:
            with self.subTest(raw=raw):
                with self.assertRaises(ConversionError) as caught:
                    from_json(raw, Order)
                self.assertIn(expected, str(caught.exception))

    def test_scalars_are_strict(self) -> None:
        self.assertEqual(from_json(3, int), 3)
        self.assertEqual(from_json(3.0, int), 3)
        self.assertEqual(from_json(3, float), 3.0)
        self.assertIsNone(from_json(None, Optional[int]))
        self.assertEqual(from_json({"a": [1]}, Any), {"a": [1]})
        self.assertEqual(from_json([1, "x"], tuple[int, str]), (1, "x"))
        for value, hint in [(True, int), (1, bool), (1.5, int), ("1", int), (None, str)]:
            with self.subTest(value=value, hint=hint):
                with self.assertRaises(ConversionError):
                    from_json(value, hint)

    def test_output_that_is_not_json_is_refused(self) -> None:
        for value in [object(), float("nan"), {1: "a"}]:
            with self.subTest(value=value):
                with self.assertRaises(ConversionError):
                    to_json(value)


class DispatchTest(unittest.TestCase):
    def setUp(self) -> None:
        task_module._TASK = None

    def error(self, input: str) -> tuple[str, str, bool]:
        with self.assertRaises(Err) as caught:
            task_module.dispatch(input)
        e = caught.exception.value
        return (e.code, e.message, e.retryable)

    def test_input_and_output_are_converted(self) -> None:
        @weft_sdk.task
        def count(order: Order) -> dict[str, int]:
            return {"items": sum(i.quantity for i in order.items)}

        output = task_module.dispatch(json.dumps({"order_id": "A", "items": [{"sku": "X", "quantity": 2}]}))
        self.assertEqual(json.loads(output), {"items": 2})
        code, message, retryable = self.error('{"order_id": "A"}')
        self.assertEqual((code, retryable), ("invalid_input", False))
        self.assertIn("missing field 'items'", message)

    def test_errors_map_to_the_wit_task_error(self) -> None:
        @weft_sdk.task
        def fail(mode: str) -> None:
            if mode == "retry":
                raise weft_sdk.TaskError("busy", "try later", retryable=True)
            if mode == "kv":
                raise weft_sdk.KvError("unavailable", "kv store unavailable: down", retryable=True)
            if mode == "http":
                raise http.StatusError(503, "overloaded")
            if mode == "output":
                return object()  # type: ignore[return-value]
            raise KeyError("sku")

        self.assertEqual(self.error('"retry"'), ("busy", "try later", True))
        self.assertEqual(self.error('"kv"'), ("kv_error", "kv store unavailable: down", True))
        self.assertEqual(self.error('"http"'), ("http_status", "the server answered 503: overloaded", True))
        self.assertEqual(self.error('"other"'), ("exception", "KeyError: 'sku'", False))
        self.assertEqual(self.error('"output"')[0], "invalid_output")

    def test_one_task_per_component(self) -> None:
        @weft_sdk.task
        def first() -> int:
            return 1

        self.assertEqual(task_module.dispatch("null"), "1")
        with self.assertRaises(RuntimeError):

            @weft_sdk.task
            def second() -> int:
                return 2


class HttpTest(unittest.TestCase):
    """The parts of ``weft_sdk.http`` that do not call the host."""

    def test_only_absolute_http_urls_are_taken(self) -> None:
        parts = http.parse("https://api.example.com:8443/v1/charges?key=s3cret#top")
        self.assertEqual((parts.scheme, parts.netloc, parts.path), ("https", "api.example.com:8443", "/v1/charges"))
        self.assertEqual(http.shown(parts), "https://api.example.com:8443/v1/charges")
        for bad in ["ftp://example.com/", "/relative", "example.com", "http://", "http://a b/", "http://x:port/"]:
            with self.subTest(bad), self.assertRaises(http.InvalidUrl) as caught:
                http.parse(bad)
            self.assertEqual((caught.exception.code, caught.exception.retryable), ("http_invalid_url", False))

    def test_locations_resolve_against_the_url_that_answered(self) -> None:
        base = http.parse("https://a.example/v1/orders/7?page=2")
        cases = {
            "https://b.example/x": "https://b.example/x",
            "//c.example/y": "https://c.example/y",
            "/root?q=1": "https://a.example/root?q=1",
            "items": "https://a.example/v1/orders/items",
        }
        for location, expected in cases.items():
            with self.subTest(location):
                self.assertEqual(http.resolve(base, location).geturl(), expected)
        with self.assertRaises(http.InvalidUrl):
            http.resolve(base, "mailto:someone@example.com")

    def test_redirects_downgrade_and_drop_credentials_as_browsers_do(self) -> None:
        a = http.parse("https://a.example/pay")
        a_too = http.parse("https://a.example/paid")
        b = http.parse("https://b.example/paid")
        headers = [("authorization", b"Bearer t"), ("content-type", b"application/json")]
        body = b'{"x":1}'
        # 307 and 308 repeat the request; inside the origin nothing is dropped.
        self.assertEqual(http.follow("POST", headers, body, 307, a, a_too), ("POST", headers, body))
        # 303, and 301/302 after a POST, continue as a GET without the body.
        for status in (301, 302, 303):
            method, sent, rest = http.follow("POST", headers, body, status, a, a_too)
            self.assertEqual((method, sent, rest), ("GET", [("authorization", b"Bearer t")], b""), status)
        self.assertEqual(http.follow("PUT", headers, body, 302, a, a_too)[0], "PUT")
        self.assertEqual(http.follow("HEAD", [], b"", 303, a, a_too)[0], "HEAD")
        # Leaving the origin drops the task's Authorization.
        self.assertEqual(http.follow("GET", headers, b"", 302, a, b)[1], [("content-type", b"application/json")])

    def test_wasi_error_codes_map_to_the_rust_sdks_codes(self) -> None:
        url = "https://a.example/pay"
        cases = {
            "HttpRequestDenied": ("http_refused", False),
            "DestinationIpProhibited": ("http_refused", False),
            "HttpRequestBodySize(Some(10))": ("http_limit", False),
            "HttpResponseBodySize(1024)": ("http_limit", False),
            "ConnectionLimitReached": ("http_limit", False),
            "DnsTimeout": ("http_timeout", True),
            "ConnectionTimeout": ("http_timeout", True),
            "ConnectionReadTimeout": ("http_timeout", True),
            "HttpResponseTimeout": ("http_timeout", True),
            "HttpRequestUriInvalid": ("http_invalid_url", False),
            "ConnectionRefused": ("http_failed", True),
            "TlsCertificateError": ("http_failed", True),
            "InternalError('boom')": ("http_failed", True),
        }
        for case, expected in cases.items():
            with self.subTest(case):
                error = http.errors.from_code(case, url)
                self.assertIsInstance(error, http.HttpError)
                self.assertIsInstance(error, weft_sdk.TaskError)
                self.assertEqual((error.code, error.retryable), expected)
                self.assertIn(url, error.message)
        refused = http.errors.from_code("HttpRequestDenied", url)
        self.assertIsInstance(refused, http.Refused)
        self.assertIn("the attempt's log says why", refused.message)

    def test_body_stream_failures_are_read_from_their_text(self) -> None:
        url = "https://a.example/big"
        self.assertIsInstance(http.errors.from_text("body size exceeds limit", url), http.Limit)
        self.assertIsInstance(http.errors.from_text("read timed out", url), http.Timeout)
        self.assertIsInstance(http.errors.from_text("connection reset", url), http.Failed)

    def test_statuses_and_bodies(self) -> None:
        ok = http.Response(200, {"content-type": "application/json"}, b'[{"sku": "X"}]', "https://a.example/")
        self.assertIs(ok.raise_for_status(), ok)
        self.assertEqual(ok.header("Content-Type"), "application/json")
        self.assertEqual(ok.json(list[Item]), [Item("X", 1)])
        with self.assertRaises(http.Failed) as caught:
            ok.json(dict)
        self.assertEqual(caught.exception.code, "http_failed")
        for status, retryable in [(404, False), (429, True), (500, True), (503, True)]:
            with self.subTest(status), self.assertRaises(http.StatusError) as caught:
                http.Response(status, {}, b"x" * 2000, "https://a.example/").raise_for_status()
            e = caught.exception
            self.assertEqual((e.code, e.retryable, e.status, len(e.body)), ("http_status", retryable, status, 512))

    def test_json_bodies_are_encoded_as_task_output_is(self) -> None:
        self.assertEqual(http.encode_json(Item("X", 2)), b'{"sku":"X","quantity":2}')
        self.assertEqual(http.encode_json({"name": "Zoë"}), '{"name":"Zoë"}'.encode())
        with self.assertRaises(http.Failed):
            http.encode_json(object())


if __name__ == "__main__":
    unittest.main()
