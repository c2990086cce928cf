"""The run folder: its layout and files (layout.py), its status, lock and the session a training attempt holds on it,
its checkpoints, and the records a run keeps (meta.json, metrics.json, packages.txt, stdout/stderr). Imports nothing
heavy: analysis code and the runners read run folders through it too."""
