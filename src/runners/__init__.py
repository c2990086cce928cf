"""Runners for batch files: local (parallel processes on this machine) and SLURM (one job array)."""
