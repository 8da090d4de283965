"""Checks a config's component names and options against the registries (transforms, losses,
weightings) before any work is done: data, teacher or training."""

from __future__ import annotations

from typing import Any

from autodistill.config.run import RunConfig
from autodistill.config.schema import parse
from autodistill.errors import ConfigError


def validate_components(cfg: RunConfig, components: Any) -> None:
    """``components``: the config's task's registries (``tasks.base.Components``)."""
    c = components
    for i, step in enumerate(cfg.student.transforms):
        key = f"student.transforms[{i}]"
        cls = registered(c.transforms, step["name"], f"{key}.name")
        parse(cls.Options, {k: v for k, v in step.items() if k != "name"}, key)
    for i, term in enumerate(cfg.distill.loss.terms):
        key = f"distill.loss.terms[{i}]"
        cls = registered(c.losses, term["name"], f"{key}.name")
        parse(cls.Options, {k: v for k, v in term.items() if k not in ("name", "weight")}, key)
    weighting = cfg.distill.loss.weighting
    cls = registered(c.weightings, weighting["name"], "distill.loss.weighting.name")
    parse(cls.Options, {k: v for k, v in weighting.items() if k != "name"}, "distill.loss.weighting")


def registered(registry: Any, name: str, key: str) -> Any:
    """The component ``name`` of ``registry``, or a ConfigError naming the config ``key``."""
    if name not in registry:
        valid = ", ".join(registry.names())
        raise ConfigError(f"The {key!r} parameter must be one of {valid}. Got {name!r} instead.")
    return registry.get(name)
