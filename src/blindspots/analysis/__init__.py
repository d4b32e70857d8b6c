"""Spatial-bias analyses: padding audit, activation maps, kernels, foveation."""
