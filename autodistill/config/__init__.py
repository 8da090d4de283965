"""Run configuration: schema, YAML loading and ``--set`` overrides (no torch here)."""

from autodistill.config.loader import apply_overrides, dump_config, load_config, read_yaml
from autodistill.config.run import RunConfig
from autodistill.config.schema import parse, require, to_dict

__all__ = ["RunConfig", "apply_overrides", "dump_config", "load_config", "parse", "read_yaml", "require", "to_dict"]
