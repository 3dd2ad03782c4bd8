"""Each benchmark run is recorded with when and how it ran, and never beside another."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench.results import record


def test_a_run_is_recorded_beside_the_figures_and_keeps_the_other_runs(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    record({"a_s": 1.0}, results, run=("a", {"start": "t1"}))
    record({"b_s": 2.0}, results, run=("b", {"start": "t2"}))
    data = json.loads(results.read_text())
    assert (data["a_s"], data["b_s"]) == (1.0, 2.0)
    assert data["runs"] == {"a": {"start": "t1"}, "b": {"start": "t2"}}


def test_run_info_names_the_commit_the_load_and_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HELPSTREAM_BENCH_EVENTS", "123")
    info = bench_main.run_info(datetime.now(UTC), os.getloadavg())
    assert info["settings"]["HELPSTREAM_BENCH_EVENTS"] == "123"
    assert len(info["commit"]) >= 7
    assert info["start"] <= info["end"]
    assert len(info["load_before"]) == len(info["load_after"]) == 3


def test_a_second_benchmark_waits_for_the_first_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_main, "LOCK", tmp_path / "bench.lock")
    order: list[str] = []

    def second() -> None:
        with bench_main.alone():
            order.append("second")

    with bench_main.alone():
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.3)
        order.append("first ends")
    waiting.join(timeout=10)
    assert order == ["first ends", "second"]
