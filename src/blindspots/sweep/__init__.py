"""Shift sweeps that measure detection rate by position."""
