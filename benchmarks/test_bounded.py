"""Bounded (max_connections): what the limit costs a checkout it does not stop, and 16 threads
or 64 tasks sharing four connections, against redis-py's and urllib3's blocking pools."""

import bounded
import names
import pytest
from interleave import CPU, WALL, exact, figure

LIMITED_RATIOS = (
    (bounded.COMPILED_LIMITED, bounded.COMPILED_UNLIMITED),
    (bounded.PURE_LIMITED, bounded.PURE_UNLIMITED),
)


def _ratio_name(limited):
    return f"{limited} / no limit"


@pytest.fixture(scope="module")
def checkout_rounds(settings, echo_address, figures):
    made = {
        c: bounded.make_checkout(c, echo_address) for c in bounded.CHECKOUTS if bounded.available(c)
    }
    rounds = settings.new_rounds({name: loop for name, (loop, _) in made.items()}, CPU)
    yield rounds
    for _, close in made.values():
        close()
    if rounds.count:
        group = names.BOUNDED_TIMED
        result = [
            figure(rounds.per_round(lambda t, name=name: t[name]), "ns", group=group,
                   what="per checkout+return", of=name)
            for name in rounds.loops
        ]  # fmt: skip
        for limited, unlimited in LIMITED_RATIOS:
            if limited in rounds.loops:
                ratios = rounds.per_round(lambda t, a=limited, b=unlimited: t[a] / t[b])
                result.append(
                    figure(ratios, "ratio", group=group, what=_ratio_name(limited), of="")
                )
        figures.extend(result)


@pytest.mark.parametrize("candidate", bounded.CHECKOUTS)
def test_checkout(benchmark, time_in_turn, checkout_rounds, candidate):
    time_in_turn(benchmark, checkout_rounds, candidate, "bounded", "checkout+return")


def test_checkout_instructions(settings, echo_address, figures):
    """Not a timing: callgrind's instructions per checkout+return, exact where valgrind exists."""
    if not settings.callgrind:
        pytest.skip(settings.no_callgrind_because)
    counts = bounded.instructions(echo_address)
    group = names.BOUNDED_COUNTED
    for candidate, value in counts.items():
        figures.append(
            exact(value, "instructions", group=group, what="per checkout+return", of=candidate)
        )
    assert all(value > 0 for value in counts.values())
    for limited, unlimited in LIMITED_RATIOS:
        if limited in counts:
            ratio = counts[limited] / counts[unlimited]
            figures.append(exact(ratio, "ratio", group=group, what=_ratio_name(limited), of=""))


def _contended_loop(run, waits):
    def loop(n):
        for _ in range(n):
            waits.extend(run())

    return loop


def _contended_rounds(settings, echo_address, figures, kind, candidates, make, group):
    made = {c: make(c, echo_address) for c in candidates if bounded.available(c)}
    waits = {name: [] for name in made}
    loops = {name: _contended_loop(run, waits[name]) for name, (run, _) in made.items()}
    rounds = settings.new_rounds(loops, WALL)
    yield rounds
    for _, close in made.values():
        close()
    if not rounds.count:
        return
    per_run = bounded.requests_per_run(kind)
    for name in rounds.loops:
        throughput = rounds.per_round(lambda t, name=name: per_run * 1e9 / t[name])
        figures.append(figure(throughput, "requests/s", group=group,
                              what="1-byte requests per second", of=name))  # fmt: skip
        for label, fraction in (("50th", 0.5), ("99th", 0.99)):
            wait = bounded.percentile(waits[name], fraction) * 1e6
            what = f"{label} percentile wait for a connection"
            figures.append(exact(wait, "µs", group=group, what=what, of=name))


@pytest.fixture(scope="module")
def thread_rounds(settings, echo_address, figures):
    yield from _contended_rounds(settings, echo_address, figures, "threads",
                                 bounded.CONTENDED_THREADS, bounded.make_threads,
                                 names.BOUNDED_THREADS)  # fmt: skip


@pytest.fixture(scope="module")
def task_rounds(settings, echo_address, figures):
    yield from _contended_rounds(settings, echo_address, figures, "tasks",
                                 bounded.CONTENDED_TASKS, bounded.make_tasks,
                                 names.BOUNDED_TASKS)  # fmt: skip


@pytest.mark.parametrize("candidate", bounded.CONTENDED_THREADS)
def test_threads(benchmark, time_in_turn, thread_rounds, candidate):
    unit = f"run of {bounded.THREADS} threads, {bounded.requests_per_run('threads')} requests"
    time_in_turn(benchmark, thread_rounds, candidate, "bounded, threads", unit)


@pytest.mark.parametrize("candidate", bounded.CONTENDED_TASKS)
def test_tasks(benchmark, time_in_turn, task_rounds, candidate):
    unit = f"run of {bounded.TASKS} tasks, {bounded.requests_per_run('tasks')} requests"
    time_in_turn(benchmark, task_rounds, candidate, "bounded, tasks", unit)
