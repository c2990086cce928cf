"""A fake `nvidia-smi` for tests: answers the two CSV queries the local runner makes from a JSON file ($FAKE_GPUS).

    {"gpus": [{"name": "Fake GPU", "memory_total": 16000, "memory_used": 0}, ...],   # index = position
     "foreign": [{"gpu": 1, "pid": 1, "memory": 5000, "when_exists": "/optional/path"}]}

GPU i has the UUID GPU-fake-i. A "foreign" process computes on its GPU (once `when_exists` exists, if given). The
runner's own jobs show up as they would on a real machine: every bin/train.py process started with this $FAKE_GPUS
and a CUDA_VISIBLE_DEVICES computes on those GPUs, using 1000 MiB on each.
"""

import json
import os
import sys
from pathlib import Path

OWN_MEMORY = 1000


def own_jobs(state_file: str) -> list[tuple[int, list[int]]]:
    """(pid, GPU indices) of the bin/train.py processes that see this fake."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
        except OSError:
            continue
        if not any(arg.endswith(b"bin/train.py") for arg in cmdline) or environ.get(b"FAKE_GPUS") != state_file:
            continue
        devices = environ.get(b"CUDA_VISIBLE_DEVICES", b"").decode()
        found.append((int(proc.name), [int(d) for d in devices.split(",") if d.strip()]))
    return found


def main(argv: list[str]) -> int:
    state_file = os.environ["FAKE_GPUS"]
    state = json.loads(Path(state_file).read_text())
    apps = [
        (f["gpu"], f["pid"], f.get("memory", 1000))
        for f in state.get("foreign", [])
        if "when_exists" not in f or Path(f["when_exists"]).exists()
    ]
    apps += [(gpu, pid, OWN_MEMORY) for pid, gpus in own_jobs(state_file.encode()) for gpu in gpus]
    query = next((a for a in argv if a.startswith("--query-")), "")
    if "--format=csv,noheader,nounits" not in argv:
        print("fake nvidia-smi: only --format=csv,noheader,nounits", file=sys.stderr)
        return 2
    if query == "--query-gpu=index,uuid,name,memory.used,memory.total":
        for i, gpu in enumerate(state["gpus"]):
            used = gpu.get("memory_used", 0) + sum(memory for g, _, memory in apps if g == i)
            print(f"{i}, GPU-fake-{i}, {gpu.get('name', 'Fake GPU')}, {used}, {gpu.get('memory_total', 16000)}")
    elif query == "--query-compute-apps=gpu_uuid,pid,used_memory":
        for gpu, pid, memory in apps:
            print(f"GPU-fake-{gpu}, {pid}, {memory}")
    else:
        print(f"fake nvidia-smi: unknown query {query!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
