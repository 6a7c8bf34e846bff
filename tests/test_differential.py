"""The twins stay identical: random sequences of operations give the same observations on both."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

import lazyconnection

OPERATIONS = ("enter", "enter", "enter_refused", "exit", "exit_with_error", "enter_failing_factory")


class _Run:
    """One class driven through a sequence, recording everything a caller could observe."""

    def __init__(self, cls, unix_path, refused_address, max_depth):
        self.made = []
        self.refuse = False
        self.fail_factory = False
        run = self

        class Steered(socket.socket):
            def connect(self, address):
                super().connect(refused_address if run.refuse else address)

        def factory(*args):
            if self.fail_factory:
                raise OSError("factory failed")
            self.made.append(Steered(*args))
            return self.made[-1]

        self.family = socket.AF_INET
        self.conn = cls(unix_path, socket.AF_UNIX, max_depth=max_depth, socket_factory=factory)
        self.unix_family = socket.AF_UNIX
        self.refused_address = refused_address

    def index(self, sock):
        return None if sock is None else self.made.index(sock)

    def step(self, operation):
        self.refuse = operation == "enter_refused"
        self.fail_factory = operation == "enter_failing_factory"
        try:
            if operation.startswith("enter"):
                outcome = ("socket", self.index(self.conn.__enter__()))
            elif operation == "exit":
                outcome = ("returned", self.conn.__exit__(None, None, None))
            else:
                error = ValueError("body")
                outcome = ("returned", self.conn.__exit__(ValueError, error, None))
        except Exception as error:
            outcome = ("raised", type(error).__name__, str(error))
        return (
            operation,
            outcome,
            tuple(self.index(sock) for sock in self.conn.connections),
            self.index(self.conn.sock),
            repr(self.conn).split(" ", 1)[1],
            tuple(sock.fileno() == -1 for sock in self.made),
        )

    def close_all(self):
        while self.conn.connections:
            self.conn.__exit__(None, None, None)


@settings(max_examples=150, deadline=None)
@given(
    operations=st.lists(st.sampled_from(OPERATIONS), max_size=25),
    max_depth=st.sampled_from([None, 1, 2, 5]),
)
def test_compiled_and_pure_python_observe_the_same(
    compiled_class, unix_path, refused_address, operations, max_depth
):
    compiled = _Run(compiled_class, unix_path, refused_address, max_depth)
    pure = _Run(lazyconnection.PyLazyConnection, unix_path, refused_address, max_depth)
    try:
        for operation in operations:
            assert compiled.step(operation) == pure.step(operation)
    finally:
        compiled.close_all()
        pure.close_all()
