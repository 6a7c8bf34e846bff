"""Interleaved rounds: candidates timed in turn, so a busy machine's drift hits them all alike.

Each candidate is a function ``loop(n)`` that performs its operation n times. Its batch size
is calibrated once so that one batch lasts at least ``BATCH_SECONDS``. A round times one batch
of every candidate, in an order that rotates from round to round; a figure is the median over
rounds of a per-round value (an overhead, a ratio), shown with its interquartile range.

A round can also cut each candidate's batch into short slices timed in alternation (candidate
A's first slice, B's first, ..., A's second, ...) and keep each candidate's fastest slice.
Where the figure is a ratio of two costs close together (compiled and the floor in the
dispatch group), a whole-batch round lets a busy neighbour slow one candidate's millisecond
and not the next one's; slices a tenth of a millisecond long, side by side, see the same
machine, and the fastest of each is the one another process disturbed least.

Groups whose work stays in the timing thread (dispatch, nesting) are timed with the thread's
CPU clock: time spent waiting while another process has the core is then not counted, where a
wall clock would charge it to whichever candidate happened to be running.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Dict, List

BATCH_SECONDS = 0.001
MAX_BATCH = 10_000_000

Loop = Callable[[int], object]
Clock = Callable[[], int]
WALL: Clock = time.perf_counter_ns
CPU: Clock = time.thread_time_ns


def calibrate(loop: Loop, clock: Clock = WALL, seconds: float = BATCH_SECONDS) -> int:
    """The smallest power of two of operations whose batch takes at least `seconds`."""
    n = 1
    while n < MAX_BATCH:
        start = clock()
        loop(n)
        if clock() - start >= seconds * 1e9:
            break
        n *= 2
    return n


class Rounds:
    """Per-operation times (ns) of several candidates, one calibrated batch of each per round.

    Bounded twice: at most `max_rounds` rounds and none started after `max_seconds`.
    With `slices` > 1, each batch is timed as that many slices in alternation (see above).
    """

    def __init__(
        self,
        loops: Dict[str, Loop],
        max_rounds: int,
        max_seconds: float,
        clock: Clock = WALL,
        slices: int = 1,
    ) -> None:
        self.loops = loops
        self.clock = clock
        self.slices = slices
        self.sizes = {name: calibrate(loop, clock) for name, loop in loops.items()}
        self.times: Dict[str, List[float]] = {name: [] for name in loops}
        self.max_rounds = max_rounds
        self.deadline = time.monotonic() + max_seconds
        self.count = 0

    def round(self, *_: object) -> None:
        """Time one batch of each candidate (a pedantic teardown: ignores its arguments)."""
        if self.count >= self.max_rounds or time.monotonic() > self.deadline:
            return
        names = list(self.loops)
        fastest = {name: math.inf for name in names}
        for turn in range(self.slices):
            shift = (self.count * self.slices + turn) % len(names)
            for name in names[shift:] + names[:shift]:
                n = max(1, self.sizes[name] // self.slices)
                start = self.clock()
                self.loops[name](n)
                fastest[name] = min(fastest[name], (self.clock() - start) / n)
        for name in names:
            self.times[name].append(fastest[name])
        self.count += 1

    def per_round(self, value: Callable[[Dict[str, float]], float]) -> List[float]:
        """`value` of each round, given that round's per-operation times by candidate."""
        return [value(dict(zip(self.times, row))) for row in zip(*self.times.values())]


def figure(values: List[float], unit: str, **labels: str) -> Dict[str, object]:
    """Median and interquartile range of per-round values, as the report shows them."""
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4)
    else:
        q1 = q3 = values[0]
    return {
        **labels,
        "value": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "rounds": len(values),
        "unit": unit,
    }


def exact(value: float, unit: str, **labels: str) -> Dict[str, object]:
    """A figure with no spread: a count, not a timing."""
    return {**labels, "value": value, "q1": None, "q3": None, "rounds": 1, "unit": unit}
