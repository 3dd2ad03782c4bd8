"""bench/results.json: every benchmark updates its own keys and keeps the others."""

from __future__ import annotations

import fcntl
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def record(
    values: dict[str, Any], path: Path = RESULTS, *, run: tuple[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Merge `values` into the results file (under a lock) and return the whole file;
    `run`: (benchmark, when and how it ran), kept under `runs`."""
    path.touch(exist_ok=True)
    with path.open("r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = handle.read()
        data: dict[str, Any] = json.loads(text) if text.strip() else {}
        data.update(values)
        if run is not None:
            data["runs"] = {**data.get("runs", {}), run[0]: run[1]}
        data["updated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        data["machine"] = machine()
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data
