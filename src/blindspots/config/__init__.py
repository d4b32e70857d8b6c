"""Typed params schema and the loader that validates `params.yaml`."""

from blindspots.config.loader import ConfigError, load_params, resolve_variant, run_ids, section

__all__ = ["ConfigError", "load_params", "resolve_variant", "run_ids", "section"]
