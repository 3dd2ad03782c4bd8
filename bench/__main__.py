"""`python -m bench [name ...]`: run the benchmarks (all by default), print, record.

Each benchmark is a module `bench/bench_<name>.py` with `run() -> dict[str, float]`; it
starts its own embedded broker and database (or uses HELPSTREAM_INFRA=external).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from bench.results import record


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(available())}")
        return 2
    for name in names:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        values = module.run()
        print(json.dumps(values, indent=2, sort_keys=True), flush=True)
        record(values)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
