"""Benchmarks of the performance targets, run by `make bench`.

`python -m benchmarks.run` measures every target and writes
`benchmarks/results.md`. Each figure is the median of several repeats, and
each ratio compares two measurements taken in the same rounds, because the
machine may be shared and absolute times drift. `--tiny` runs every
measurement at the sizes of `conf/presets/tiny.yaml` in about two minutes,
which checks that the benchmarks work but measures nothing meaningful.
"""
