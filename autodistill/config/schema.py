"""Validated dataclasses from plain dicts (YAML), with errors that name the key.

Config dataclasses hold only primitives, lists, dicts and nested dataclasses so that they
serialize back to YAML/JSON unchanged. Checks live in ``__post_init__`` and call :func:`require`;
the parser adds the full dotted key path to the message. This module imports no torch.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from autodistill.errors import ConfigError


class Invalid(Exception):
    """Raised by checks inside a dataclass; ``key`` is relative to that dataclass."""

    def __init__(self, key: str, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.message = message
        self.rule = rule  # the check alone ("must be > 0"), when it came from require


def require(ok: bool, key: str, rule: str, got: Any) -> None:
    """Fail a check: ``require(t > 0, "temperature", "must be > 0", t)``."""
    if not ok:
        raise Invalid(key, f"{rule}. Got {got!r} instead.", rule)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _fail(path: str, message: str, source: str) -> ConfigError:
    where = f" of {source}" if source else ""
    return ConfigError(f"The {path!r} parameter{where} {message}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def parse(cls: type, data: Any, path: str = "", source: str = "") -> Any:
    """Build ``cls`` (a dataclass) from ``data``; unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(path or "<root>", f"must be a mapping. Got {type(data).__name__} instead.", source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise _fail(_join(path, unknown[0]), f"is not a known key. Allowed keys here: {allowed}.", source)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = convert(hints[name], value, _join(path, name), source)
    try:
        return cls(**kwargs)
    except Invalid as err:
        raise _fail(_join(path, err.key), err.message, source) from None
    except TypeError:  # a required key is missing
        missing = [n for n, f in fields.items() if n not in kwargs and _is_required(f)]
        if missing:
            raise _fail(_join(path, missing[0]), "is required.", source) from None
        raise


def _is_required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def convert(tp: Any, value: Any, path: str, source: str = "") -> Any:
    """Check ``value`` against type ``tp``; nested dataclasses are parsed."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, path, source)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise _fail(path, f"must be {_type_name(tp)}. Got {value!r} instead.", source)
    if origin is Literal:
        if value not in args:
            raise _fail(path, f"must be {_type_name(tp)}. Got {value!r} instead.", source)
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, path, source)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(path, f"must be a list. Got {value!r} instead.", source)
        item = args[0] if args else Any
        out = [convert(item, v, _join(path, i), source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, f"must be a mapping. Got {value!r} instead.", source)
        vt = args[1] if args else Any
        return {str(k): convert(vt, v, _join(path, str(k)), source) for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(path, f"must be a number. Got {value!r} instead.", source)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _fail(path, f"must be an integer. Got {value!r} instead.", source)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(path, f"must be true or false. Got {value!r} instead.", source)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _fail(path, f"must be a string. Got {value!r} instead.", source)
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


_KINDS = {float: "a number", int: "a whole number", bool: "true or false", str: "a string"}


def field_rule(cls: type, key: str, value: Any) -> str | None:
    """The rule of field ``key`` of the config dataclass ``cls`` that ``value`` breaks, e.g.
    ``"must be > 0"``; None when it passes. The class's own type and ``__post_init__`` checks
    decide (its other fields at their defaults), so a CLI flag or a search-space range that stands
    for a config key accepts exactly what that key accepts, from one declaration."""
    hint = typing.get_type_hints(cls)[key]
    try:
        converted = convert(hint, value, key)
    except ConfigError:
        plain = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        kind = _KINDS.get(plain[0]) if len(plain) == 1 else None
        return f"must be {kind or _type_name(hint)}"
    try:
        cls(**{key: converted})
    except Invalid as err:
        return err.rule or err.message
    return None


def check_as(cls: type, key: str, value: Any, what: str, config_key: str) -> None:
    """Refuse ``value`` given as ``what`` (e.g. "'--n-trials' flag") as the config's ``config_key``
    (field ``key`` of ``cls``) would refuse it."""
    rule = field_rule(cls, key, value)
    if rule is not None:
        raise ConfigError(f"The {what} {rule}, like the config's {config_key!r}. Got {value!r} instead.")


def to_dict(obj: Any) -> Any:
    """A dataclass tree back to plain dicts and lists (for YAML/JSON)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
