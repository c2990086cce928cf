"""Reading run folders: tables of runs, experiment reports and their plots, comparing and reproducing runs. Imports no
training code (src/results.py is the public entry point)."""
