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
            if mode == "output":
                return object()  # type: ignore[return-value]
            raise KeyError("sku")

        self.assertEqual(self.error('"retry"'), ("busy", "try later", True))
        self.assertEqual(self.error('"kv"'), ("kv_error", "kv store unavailable: down", True))
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


if __name__ == "__main__":
    unittest.main()
