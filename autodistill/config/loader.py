"""Load a run config from YAML, apply ``--set key.sub=value`` overrides, validate."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from autodistill.config.run import RunConfig
from autodistill.config.schema import parse, to_dict
from autodistill.errors import ConfigError


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Config file {str(p)!r} does not exist.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"Config file {str(p)!r} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {str(p)!r} must hold a mapping at the top. Got {type(data).__name__}.")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``["distill.lr=1e-4", "student.transforms[0].layers=2"]`` -> updated copy of ``data``."""
    out = copy.deepcopy(data)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"The --set value {item!r} must look like key.sub=value.")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"The --set value {item!r} has an empty key.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _set_path(out, key, value, item)
    return out


def _split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for part in key.split("."):
        while "[" in part and part.endswith("]"):
            head, _, idx = part.partition("[")
            if head:
                parts.append(head)
            inner, _, rest = idx.partition("]")
            parts.append(int(inner))
            part = rest.strip("[]") if rest else ""
            if not part:
                break
        else:
            if part:
                parts.append(part)
    return parts


def _set_path(data: dict[str, Any], key: str, value: Any, item: str) -> None:
    try:
        parts = _split_key(key)
    except ValueError:
        raise ConfigError(f"The --set key {key!r} has a bad list index.") from None
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ConfigError(f"The --set key {key!r}: index {part} is out of range.")
            node = node[part]
            continue
        if part not in node or node[part] is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"The --set key {key!r}: index {last} is out of range.")
    elif not isinstance(node, dict):
        raise ConfigError(f"The --set key {key!r} does not lead to a mapping ({item!r}).")
    node[last] = value


def _with_list_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Index overrides like ``student.transforms[0].layers`` need the default list in place."""
    defaults = to_dict(RunConfig())
    for section, key in (("student", "transforms"), ("distill", "loss")):
        data.setdefault(section, {})
        if isinstance(data[section], dict):
            data[section].setdefault(key, copy.deepcopy(defaults[section][key]))
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read, override and validate. Any error names the key and the file."""
    data = read_yaml(path) if path is not None else {}
    source = f"config {str(path)!r}" if path is not None else ""
    if overrides:
        data = apply_overrides(_with_list_defaults(data), overrides)
    return parse(RunConfig, data, "", source)


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
