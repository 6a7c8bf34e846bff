"""The twins stay identical: a state machine drives both classes side by side through the same
operations and compares everything a caller can observe after every step."""

from __future__ import annotations

import asyncio
import contextvars
import socket

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

import lazyconnection

# What happens to the next socket opened: connected, refused (every time, or once and then
# connected on a retry), the factory fails, or the on_connect hook raises or enters the
# connection again from inside the opening (where one is configured).
FATES = ("connects", "refused", "refused once", "factory fails", "hook raises", "hook enters")
BODY_ERRORS = (None, ValueError, GeneratorExit)
CONTEXTS = 3  # other contexts (as threads or greenlets would have), each with its own stack


class _AsyncCaller:
    """One asyncio task living across steps, as a task doing `async with` one after another."""

    def __init__(self, loop):
        self.loop = loop
        self.inbox = loop.create_future()
        self.task = loop.create_task(self._serve(self.inbox))

    async def _serve(self, inbox):
        while True:
            job, reply, inbox = await inbox  # each message says where the next one comes
            if job is None:
                return
            try:
                reply.set_result(await job())
            except Exception as error:
                reply.set_exception(error)

    def _send(self, job, reply):
        inbox, self.inbox = self.inbox, self.loop.create_future()
        inbox.set_result((job, reply, self.inbox))

    def run(self, job):
        reply = self.loop.create_future()
        self._send(job, reply)
        return self.loop.run_until_complete(reply)

    def stop(self):
        self._send(None, None)
        self.loop.run_until_complete(self.task)


class _Twin:
    """One class's connection, the sockets its factory made, and its contexts and task."""

    def __init__(self, cls, config, servers, loop):
        self.echo_address, self.refused_address, self.redirected = servers
        self.made = []
        self.refusals = 0  # how many of the next connects are refused
        self.factory_fails = False
        self.hook_action = None  # what the on_connect hook does next, once
        options = {key: value for key, value in config.items() if key != "hook"}
        if config["hook"]:
            options["on_connect"] = self._hook
        self.conn = cls(self.echo_address, socket_factory=self._factory, **options)
        self.contexts = [contextvars.Context() for _ in range(CONTEXTS)]
        self.loop = loop
        self.task = _AsyncCaller(loop)

    def _factory(self, *args):
        if self.factory_fails:
            raise OSError("the factory failed")
        if self.refusals:
            self.refusals -= 1
            sock = self.redirected(self.refused_address)(*args)
        else:
            sock = socket.socket(*args)
        self.made.append(sock)
        return sock

    def _hook(self, sock):
        action, self.hook_action = self.hook_action, None
        if action == "hook raises":
            raise ValueError("the hook refused the socket")
        if action == "hook enters":
            self.conn.__enter__()

    def prepare(self, fate):
        self.refusals = {"refused": 2, "refused once": 1}.get(fate, 0)
        self.factory_fails = fate == "factory fails"
        self.hook_action = fate

    def index(self, sock):
        return None if sock is None else self.made.index(sock)

    def outcome(self, call, *args):
        """What a call gives back: the index of the socket it returned, or what it raised."""
        try:
            result = call(*args)
        except Exception as error:
            return ("raised", type(error).__name__, str(error))
        return ("socket", self.index(result)) if isinstance(result, socket.socket) else result

    def observe(self):
        conn = self.conn

        def indices():
            return tuple(self.index(sock) for sock in conn.connections)

        async def indices_in_task():
            return indices()

        return {
            "connections": indices(),
            "sock": self.index(conn.sock),
            "repr": repr(conn).split(" ", 1)[1],
            "in contexts": [context.run(indices) for context in self.contexts],
            "in the task": self.task.run(indices_in_task),
            "closed": [sock.fileno() == -1 for sock in self.made],
            "timeouts": [sock.gettimeout() for sock in self.made if sock.fileno() != -1],
            "stats": conn.stats(),
        }

    def close(self):
        self.task.stop()
        for sock in self.made:
            sock.close()


def _exit_arguments(error_type):
    return (None, None, None) if error_type is None else (error_type, error_type("body"), None)


def _machine(compiled_class, servers):
    class TwinsObserveTheSame(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.twins = []

        @initialize(
            config=st.fixed_dictionaries(
                {"hook": st.booleans(), "pool_size": st.sampled_from([0, 1, 2])},
                optional={
                    "max_depth": st.sampled_from([None, 1, 2, 5]),
                    "timeout": st.sampled_from([None, 5.0]),
                    "socket_options": st.just([(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]),
                    "retries": st.just(1),  # against a refused address, a tiny backoff
                    # At the limit an enter fails at once (one thread: nobody could make room).
                    "max_connections": st.sampled_from([2, 3]),
                },
            )
        )
        def make_both(self, config):
            if "retries" in config:
                config = {**config, "backoff": 0.0005}
            if "max_connections" in config:
                config = {**config, "wait_timeout": 0}
            self.twins = [
                _Twin(cls, config, servers, self.loop)
                for cls in (compiled_class, lazyconnection.PyLazyConnection)
            ]
            self.compare(("made",) * 2)

        def compare(self, outcomes):
            compiled, pure = (
                (outcome, twin.observe()) for outcome, twin in zip(outcomes, self.twins)
            )
            assert compiled == pure

        def each(self, fate, step):
            outcomes = []
            for twin in self.twins:
                twin.prepare(fate)
                outcomes.append(step(twin))
                limit = twin.conn.options["max_connections"]
                if limit is not None:
                    assert sum(sock.fileno() != -1 for sock in twin.made) <= limit
            self.compare(outcomes)

        @rule(fate=st.sampled_from(FATES))
        def enter(self, fate):
            self.each(fate, lambda twin: twin.outcome(twin.conn.__enter__))

        @rule(error=st.sampled_from(BODY_ERRORS))
        def exit(self, error):
            self.each(None, lambda twin: twin.outcome(twin.conn.__exit__, *_exit_arguments(error)))

        @rule(fate=st.sampled_from(FATES))
        def async_enter(self, fate):
            self.each(fate, lambda twin: twin.outcome(twin.task.run, twin.conn.__aenter__))

        @rule(error=st.sampled_from(BODY_ERRORS[:2]))
        def async_exit(self, error):
            def step(twin):
                return twin.outcome(
                    twin.task.run, lambda: twin.conn.__aexit__(*_exit_arguments(error))
                )

            self.each(None, step)

        @rule(error=st.sampled_from(BODY_ERRORS[:2]))
        def async_exit_in_a_new_task(self, error):
            def step(twin):
                exiting = twin.conn.__aexit__(*_exit_arguments(error))
                return twin.outcome(twin.loop.run_until_complete, exiting)

            self.each(None, step)

        @rule(context=st.integers(0, CONTEXTS - 1), fate=st.sampled_from(FATES))
        def enter_elsewhere(self, context, fate):
            def step(twin):
                return twin.outcome(twin.contexts[context].run, twin.conn.__enter__)

            self.each(fate, step)

        @rule(context=st.integers(0, CONTEXTS - 1), error=st.sampled_from(BODY_ERRORS))
        def exit_elsewhere(self, context, error):
            def step(twin):
                exiting = twin.conn.__exit__
                return twin.outcome(twin.contexts[context].run, exiting, *_exit_arguments(error))

            self.each(None, step)

        @rule(error=st.sampled_from(BODY_ERRORS))
        def exit_in_a_copied_context(self, error):
            """As a generator closed by the event loop in a new task exits."""

            def step(twin):
                copied = contextvars.copy_context()
                return twin.outcome(copied.run, twin.conn.__exit__, *_exit_arguments(error))

            self.each(None, step)

        @rule()
        def close_idle(self):
            self.each(None, lambda twin: twin.outcome(twin.conn.close_idle))

        @rule()
        def body_closes_its_socket(self):
            def step(twin):
                if twin.conn.sock is not None:
                    twin.conn.sock.close()

            self.each(None, step)

        @rule(context=st.integers(0, CONTEXTS - 1))
        def end_a_context(self, context):
            """The context goes (its stack is left behind) and a new one takes its place."""

            def step(twin):
                twin.contexts[context] = contextvars.Context()

            self.each(None, step)

        def teardown(self):
            try:
                for twin in self.twins:
                    twin.close()
            finally:
                self.loop.close()

    return TwinsObserveTheSame


def test_compiled_and_pure_python_observe_the_same(
    compiled_class, echo_address, refused_address, redirected
):
    machine = _machine(compiled_class, (echo_address, refused_address, redirected))
    run_state_machine_as_test(
        machine, settings=settings(max_examples=300, stateful_step_count=30, deadline=None)
    )
