"""`python -m bench [name ...]`: run the benchmarks (all by default), print, record.

Each benchmark is a module `bench/bench_<name>.py` with `run() -> dict[str, float]`; it
starts its own embedded broker and database (or uses HELPSTREAM_INFRA=external).

Every run records, under `runs.<name>` in results.json, its own start and end time, the
commit (and whether the tree had uncommitted changes), the load average before and after,
and the `HELPSTREAM_BENCH_*` settings it ran with. Benchmarks never run two at once: a
lock file is held for the whole run, and a second `python -m bench` waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.results import record

if TYPE_CHECKING:
    from collections.abc import Iterator

RESULTS_FILE = "bench/results.json"
LOCK = Path(os.environ.get("HELPSTREAM_BENCH_LOCK", "/tmp/helpstream-bench.lock"))


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Holds the benchmark lock; says so when it has to wait for another run."""
    with LOCK.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another benchmark holds {LOCK}; waiting for it to end", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def run_info(started: datetime, load_before: tuple[float, ...]) -> dict[str, Any]:
    return {
        "start": started.isoformat(timespec="seconds"),
        "end": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # results.json aside: an earlier benchmark of the same run has just written it
        "uncommitted_changes": bool(
            _git("status", "--porcelain", "--untracked-files=no", "--", ".", f":!{RESULTS_FILE}")
        ),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in sorted(os.environ.items()) if k.startswith("HELPSTREAM_")},
    }


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(available())}")
        return 2
    for name in names:
        with alone():
            started, load, clock = datetime.now(UTC), os.getloadavg(), time.monotonic()
            print(f"== {name} (start {started.isoformat(timespec='seconds')})", flush=True)
            module = importlib.import_module(f"bench.bench_{name}")
            values = module.run()
            info = run_info(started, load)
            print(json.dumps(values, indent=2, sort_keys=True), flush=True)
            print(f"== {name} (end {info['end']}, {time.monotonic() - clock:.0f} s)", flush=True)
            record(values, run=(name, info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
