"""Experiments: search spaces (grid, random, Optuna) over a template config, `prepare` (one config per point and a
batch.sh of the unfinished runs) and the `main.py prepare|report` command line every experiment folder calls."""
