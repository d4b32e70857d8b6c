"""Thin stage entry points that read params, call library code and write outputs."""
