"""Threads: four threads share one object, each nesting real connections to a loopback server."""

import threading

THREADS = 4
CYCLES_PER_THREAD = 25  # each cycle opens two nested connections


def test_threads(benchmark, implementation, tcp_address):
    _, cls = implementation
    benchmark.group = "threads"
    benchmark.extra_info["connections_per_call"] = THREADS * CYCLES_PER_THREAD * 2
    conn = cls(tcp_address)
    failures = []

    def worker():
        try:
            for _ in range(CYCLES_PER_THREAD):
                with conn as outer, conn as inner:
                    assert conn.connections == (outer, inner)
        except BaseException as error:
            failures.append(error)

    def run():
        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    benchmark.pedantic(run, rounds=30, warmup_rounds=2)
    assert failures == []
