"""Group commit: concurrent callers share one flush, and each gets its own outcome."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from pymongo.errors import NetworkTimeout

from shared.group_commit import GroupCommit
from shared.mongo import is_unavailable

if TYPE_CHECKING:
    from collections.abc import Sequence


class Recorder:
    """A flush that doubles numbers, refuses negative ones, and remembers its groups."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []

    async def flush(self, items: Sequence[int]) -> Sequence[int | BaseException]:
        self.groups.append(list(items))
        await asyncio.sleep(0)
        return [ValueError(f"negative: {i}") if i < 0 else i * 2 for i in items]


async def test_concurrent_callers_share_one_flush_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0.05)

    results = await asyncio.gather(*(group.submit(i) for i in range(10)))

    assert results == [i * 2 for i in range(10)]
    assert recorder.groups == [list(range(10))]


async def test_a_group_keeps_the_order_of_submission() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0.05)

    async def later(item: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return await group.submit(item)

    results = await asyncio.gather(later(3, 0.01), later(1, 0.0), later(2, 0.005))

    assert recorder.groups == [[1, 2, 3]]
    assert list(results) == [6, 2, 4]


async def test_a_full_group_is_flushed_before_its_window_ends() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=60.0, max_items=4)

    results = await asyncio.wait_for(asyncio.gather(*(group.submit(i) for i in range(8))), 10)

    assert results == [i * 2 for i in range(8)]
    assert recorder.groups == [[0, 1, 2, 3], [4, 5, 6, 7]]


async def test_a_lone_caller_is_written_once_its_window_ends() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0.001)

    assert await asyncio.wait_for(group.submit(21), 10) == 42
    assert await asyncio.wait_for(group.submit(5), 10) == 10
    assert recorder.groups == [[21], [5]]


async def test_a_window_of_zero_writes_each_item_alone() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0)

    assert list(await asyncio.gather(group.submit(1), group.submit(2))) == [2, 4]
    assert recorder.groups == [[1], [2]]


async def test_an_error_for_one_item_fails_only_its_caller() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0.05)

    outcomes = await asyncio.gather(
        group.submit(1), group.submit(-1), group.submit(2), return_exceptions=True
    )

    assert outcomes[0] == 2
    assert isinstance(outcomes[1], ValueError)
    assert str(outcomes[1]) == "negative: -1"
    assert outcomes[2] == 4
    assert recorder.groups == [[1, -1, 2]]


async def test_a_failing_flush_fails_every_caller_of_its_group_with_its_error() -> None:
    calls: list[list[int]] = []

    async def outage(items: Sequence[int]) -> Sequence[int | BaseException]:
        calls.append(list(items))
        raise NetworkTimeout("timed out")

    group: GroupCommit[int, int] = GroupCommit(outage, window_s=0.05)
    outcomes = await asyncio.gather(*(group.submit(i) for i in range(5)), return_exceptions=True)

    assert calls == [[0, 1, 2, 3, 4]]
    assert all(isinstance(o, NetworkTimeout) for o in outcomes)
    assert all(is_unavailable(o) for o in outcomes if isinstance(o, BaseException))


async def test_the_next_group_is_written_after_a_failed_one() -> None:
    attempts: list[list[int]] = []

    async def flaky(items: Sequence[int]) -> Sequence[int | BaseException]:
        attempts.append(list(items))
        if len(attempts) == 1:
            raise NetworkTimeout("timed out")
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(flaky, window_s=0.01)
    with pytest.raises(NetworkTimeout):
        await group.submit(1)
    assert await group.submit(2) == 2


async def test_a_flush_with_the_wrong_number_of_outcomes_fails_its_callers() -> None:
    async def short(items: Sequence[int]) -> Sequence[int | BaseException]:
        return list(items)[:-1]

    group: GroupCommit[int, int] = GroupCommit(short, window_s=0.01)
    outcomes = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)

    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_a_cancelled_caller_does_not_cancel_the_flush_for_the_others() -> None:
    release = asyncio.Event()
    written: list[list[int]] = []

    async def slow(items: Sequence[int]) -> Sequence[int | BaseException]:
        await release.wait()
        written.append(list(items))
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(slow, window_s=0.001)
    callers = [asyncio.create_task(group.submit(i)) for i in range(3)]
    await asyncio.sleep(0.05)  # the group is being flushed
    callers[1].cancel()
    release.set()

    assert await callers[0] == 0
    assert await callers[2] == 20
    with pytest.raises(asyncio.CancelledError):
        await callers[1]
    assert written == [[0, 1, 2]]  # its item was in the write already


async def test_a_caller_cancelled_before_its_group_is_written_is_left_out() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=0.05)
    callers = [asyncio.create_task(group.submit(i)) for i in range(3)]
    await asyncio.sleep(0)  # all three are waiting for the window to end
    callers[0].cancel()

    assert await callers[1] == 2
    assert await callers[2] == 4
    assert callers[0].cancelled()
    assert recorder.groups == [[1, 2]]


async def test_groups_in_flight_do_not_wait_for_each_other() -> None:
    release = asyncio.Event()
    started: list[list[int]] = []

    async def slow(items: Sequence[int]) -> Sequence[int | BaseException]:
        started.append(list(items))
        await release.wait()
        return list(items)

    group: GroupCommit[int, int] = GroupCommit(slow, window_s=0.001)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0.05)

    assert started == [[1], [2]]  # the second group did not wait for the first's write
    release.set()
    assert list(await asyncio.gather(first, second)) == [1, 2]


async def test_each_flush_is_reported_with_its_size_and_error() -> None:
    reports: list[tuple[int, str | None]] = []
    recorder = Recorder()
    group = GroupCommit(
        recorder.flush,
        window_s=0.02,
        on_flush=lambda size, seconds, error: reports.append(
            (size, type(error).__name__ if error else None)
        ),
    )

    await asyncio.gather(*(group.submit(i) for i in range(4)))
    await group.drain()

    assert reports == [(4, None)]


async def test_drain_writes_what_is_waiting_without_its_window() -> None:
    recorder = Recorder()
    group = GroupCommit(recorder.flush, window_s=60.0)
    caller = asyncio.create_task(group.submit(7))
    await asyncio.sleep(0)

    await asyncio.wait_for(group.drain(), 10)

    assert await caller == 14


def test_a_negative_window_or_an_empty_group_is_refused() -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match="window_s"):
        GroupCommit(recorder.flush, window_s=-1)
    with pytest.raises(ValueError, match="max_items"):
        GroupCommit(recorder.flush, max_items=0)
