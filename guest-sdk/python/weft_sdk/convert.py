"""JSON values to and from a task's typed input and output.

:func:`from_json` turns what ``json.loads`` gave into the type a task's
parameter is annotated with: dataclasses (recursively, unknown fields
refused, missing ones taken from their defaults), ``int``, ``float``,
``str``, ``bool``, ``None``, ``list[T]``, ``tuple[...]``, ``dict[str, T]``,
``Optional[T]``/``T | None``, other unions (first that fits), ``Literal``,
``Enum`` and ``Any``. :func:`to_json` does the reverse for a task's return
value. Failures raise :class:`ConversionError` naming the path of the value
that did not fit, e.g. ``$.items[2].sku``.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import types
import typing
from typing import Any, Literal, Union

__all__ = ["ConversionError", "from_json", "to_json"]


class ConversionError(ValueError):
    """A JSON value does not fit the type asked for, or a return value is
    not JSON."""


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def _kind(value: Any) -> str:
    """How JSON would call the value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, with string annotations resolved."""
    module = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(module) if module else None)


def from_json(value: Any, hint: Any, path: str = "$") -> Any:
    """Converts ``value`` (as ``json.loads`` gives it) to ``hint``."""
    if hint is Any or hint is typing.Any or hint is object:
        return value
    if hint is None or hint is type(None):
        if value is not None:
            raise ConversionError(f"{path}: expected null, found {_kind(value)}")
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(hint, types.UnionType)):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[T]: T's own error says most
            return from_json(value, options[0], path)
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return from_json(value, option, path)
            except ConversionError as e:
                errors.append(str(e))
        raise ConversionError(f"{path}: {_kind(value)} fits none of {hint!r} ({'; '.join(errors)})")
    if origin is Literal:
        if value in args and all(type(value) is type(a) for a in args if a == value):
            return value
        raise ConversionError(f"{path}: expected one of {list(args)!r}, found {value!r}")
    if origin in (list, typing.List, set, frozenset) or hint in (list, set, frozenset):
        if not isinstance(value, list):
            raise ConversionError(f"{path}: expected an array, found {_kind(value)}")
        item = args[0] if args else Any
        items = [from_json(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        container = origin or hint
        return items if container in (list, typing.List) else container(items)
    if origin is tuple or hint is tuple:
        if not isinstance(value, list):
            raise ConversionError(f"{path}: expected an array, found {_kind(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_json(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConversionError(f"{path}: expected an array of {len(args)} items, found {len(value)}")
        return tuple(from_json(v, args[i] if args else Any, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConversionError(f"{path}: expected an object, found {_kind(value)}")
        item = args[1] if len(args) == 2 else Any
        return {k: from_json(v, item, f"{path}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_from_json(value, hint, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = [m.value for m in hint]
            raise ConversionError(f"{path}: expected one of {allowed!r}, found {value!r}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise ConversionError(f"{path}: expected a boolean, found {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConversionError(f"{path}: expected an integer, found {_kind(value)} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(f"{path}: expected a number, found {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConversionError(f"{path}: expected a string, found {_kind(value)}")
        return value
    raise ConversionError(f"{path}: the type {_name(hint)} is not supported for JSON input")


def _dataclass_from_json(value: Any, cls: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConversionError(f"{path}: expected an object for {cls.__name__}, found {_kind(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ConversionError(
            f"{path}: unknown field {unknown[0]!r} for {cls.__name__}, expected one of {sorted(fields)!r}"
        )
    hints = _hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in value:
            kwargs[name] = from_json(value[name], hints.get(name, Any), f"{path}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConversionError(f"{path}: missing field {name!r} of {cls.__name__}")
    return cls(**kwargs)


def to_json(value: Any, path: str = "$") -> Any:
    """Converts a task's return value to what ``json.dumps`` takes:
    dataclasses become objects, tuples and sets arrays, enums their value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConversionError(f"{path}: {value!r} is not a JSON number")
        return value
    if isinstance(value, enum.Enum):
        return to_json(value.value, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_json(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConversionError(f"{path}: object keys must be strings, found {k!r}")
            out[k] = to_json(v, f"{path}.{k}")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise ConversionError(f"{path}: a {type(value).__name__} is not JSON")
