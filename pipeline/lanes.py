"""Lanes: a batch's jobs shared out over worker threads that together hold the machine's cores.

Why a module of its own: how the cores are shared is a scheduling policy, independent of what a job does. A job
is (kind, items); the pipeline says what running one means. Jobs start longest first, by what each kind took per
item in the previous batch, and each lane holds torch's threads divided by the lanes (OpenMP keeps the count per
calling thread, so it is set in the lane itself). Before lanes, two torch threads beside a dlib thread on two
cores made CLIP 2.5x and e4e 1.8x slower than alone (issue 13).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.device import torch_thread_count
from core.timing import timed

Item = TypeVar("Item")
Job = tuple[str, list[Any]]


class Lanes:
    """Runs jobs on `count` lanes (never more than torch's threads) and remembers each kind's cost per item."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError(f"lanes must be at least 1, not {count}")
        self.count = count
        self._ms_per_item: dict[str, float] = {}

    @property
    def active(self) -> int:
        """`count`, but never more than torch's threads: a one-CPU worker (a Ray actor) runs one job at a time."""
        return min(self.count, torch_thread_count())

    def split(self, items: Sequence[Item]) -> list[list[Item]]:
        """`items` cut into one contiguous part per active lane, so that no lane waits on one long job."""
        return parts(list(items), self.active)

    def run(self, jobs: list[Job], run_job: Callable[[str, list[Any]], None]) -> None:
        """Every job through `run_job(kind, items)`, the longest expected first, on the active lanes."""
        jobs = sorted(jobs, key=lambda job: -self._ms_per_item.get(job[0], 0.0) * len(job[1]))
        lanes = self.active
        if lanes <= 1 or len(jobs) <= 1:
            for job in jobs:
                self._timed(run_job, *job)
            return
        threads = max(torch_thread_count() // lanes, 1)
        with ThreadPoolExecutor(max_workers=min(lanes, len(jobs)), thread_name_prefix="gantrace-lane",
                                initializer=torch_thread_count, initargs=(threads,)) as pool:
            for future in [pool.submit(self._timed, run_job, *job) for job in jobs]:
                future.result()

    def _timed(self, run_job: Callable[[str, list[Any]], None], kind: str, items: list[Any]) -> None:
        with timed() as watch:
            run_job(kind, items)
        self._ms_per_item[kind] = watch.seconds * 1000 / len(items)


def parts(items: list[Item], count: int) -> list[list[Item]]:
    """`items` cut into at most `count` contiguous, non-empty parts whose sizes differ by at most one."""
    size, extra = divmod(len(items), count)
    bounds = [0]
    for index in range(count):
        bounds.append(bounds[-1] + size + (index < extra))
    return [items[start:stop] for start, stop in zip(bounds, bounds[1:]) if stop > start]
