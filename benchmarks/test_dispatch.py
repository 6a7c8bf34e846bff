"""Dispatch: what one `with` costs when the socket's own calls cost next to nothing."""

from socket import AF_INET, SOCK_STREAM

import pytest
import references

import lazyconnection

WITHS_PER_CALL = 100
ADDRESS = ("127.0.0.1", 9)  # never connected to: the stand-in does no I/O
_REPEAT = range(WITHS_PER_CALL)

pytestmark = pytest.mark.benchmark(group="dispatch")


def _time_with(benchmark, context_manager):
    def run():
        for _ in _REPEAT:
            with context_manager:
                pass

    benchmark.extra_info["withs_per_call"] = WITHS_PER_CALL
    benchmark(run)


def test_compiled(benchmark, compiled_class, stand_ins):
    _time_with(benchmark, compiled_class(ADDRESS, socket_factory=stand_ins.stand_in_factory))


def test_pure_python(benchmark, stand_ins):
    conn = lazyconnection.PyLazyConnection(ADDRESS, socket_factory=stand_ins.stand_in_factory)
    _time_with(benchmark, conn)


def test_recipe_stack(benchmark, monkeypatch, stand_ins):
    monkeypatch.setattr(references, "socket", stand_ins.stand_in_factory)
    _time_with(benchmark, references.RecipeStackLazyConnection(ADDRESS))


def test_recipe_thread_local(benchmark, monkeypatch, stand_ins):
    monkeypatch.setattr(references, "socket", stand_ins.stand_in_factory)
    _time_with(benchmark, references.RecipeThreadLocalLazyConnection(ADDRESS))


def test_floor_empty_compiled_context_manager(benchmark, stand_ins):
    _time_with(benchmark, stand_ins.EmptyContextManager())


def test_baseline_stand_in_calls_inline(benchmark, stand_ins):
    """The stand-in's own calls without any `with`: subtracted to give dispatch overhead."""
    factory = stand_ins.stand_in_factory

    def run():
        for _ in _REPEAT:
            sock = factory(AF_INET, SOCK_STREAM, 0)
            sock.connect(ADDRESS)
            sock.close()

    benchmark.extra_info["withs_per_call"] = WITHS_PER_CALL
    benchmark(run)


def test_baseline_empty_loop(benchmark):
    """The loop alone: subtracted from the floor's time to give the floor's overhead."""

    def run():
        for _ in _REPEAT:
            pass

    benchmark.extra_info["withs_per_call"] = WITHS_PER_CALL
    benchmark(run)
