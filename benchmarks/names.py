"""Candidates' and groups' names, spelled one way in test ids, tables, the summary and chart."""

COMPILED = "compiled"
PURE = "pure Python"
RECIPE_STACK = "recipe (stack)"
RECIPE_THREAD_LOCAL = "recipe (thread-local)"
FLOOR = "floor"
RAW = "raw socket"
CREATE_CONNECTION = "create_connection"

# What a timed overhead is measured above; never a candidate of its own in the summary.
INLINE = "socket calls inline"
EMPTY_LOOP = "empty loop"

CANDIDATES = (COMPILED, PURE, RECIPE_STACK, RECIPE_THREAD_LOCAL, FLOOR, RAW, CREATE_CONNECTION)

# The summary's groups, in its order: the headline dispatch figures first, exact before timed.
REAL = "dispatch (instructions, real UDP socket)"
STAND_IN = "dispatch (instructions, compiled stand-in)"
TIMED = "dispatch (timed, stand-in socket)"
REAL_TIMED = "dispatch (CPU time, real UDP socket)"
ASYNC = "async dispatch (timed, stand-in socket and loop)"
NESTING = "nesting (timed, stand-in socket)"
THREADS = "4 threads, one shared object (real TCP connections)"
TCP = "connect+close over tcp (end to end)"
UNIX = "connect+close over unix (end to end)"
# Reuse of idle sockets (pool_size): our checkout against other libraries' pools.
REDIS = "redis-py"
URLLIB3 = "urllib3"
LIFO_QUEUE = "queue.LifoQueue"
HELD = "one socket held open"
PER_WITH = "connect per `with` (compiled, no pool)"
REUSE_BEST_OTHER = f"better of {REDIS} and {URLLIB3}"
REUSE_COUNTED = "reuse: checkout+return (instructions, real TCP socket)"
REUSE_TIMED = "reuse: checkout+return (timed, real TCP socket)"
REUSE_END_TO_END = "reuse: 1-byte request and reply per `with` (end to end, tcp)"
MEMORY = "memory"
# Counted `async with`s (no pool, and a pool's checkout) and a context's first `with`.
ASYNC_HELPER = "hand-written asyncio pool"
ASYNC_COUNTED = "async dispatch (instructions, real UDP socket)"
ASYNC_REUSE_COUNTED = "async reuse: checkout+return (instructions, real TCP socket)"
FIRST_COUNTED = "a context's first `with` against later ones (instructions, real UDP socket)"
# The floor whose enter sets a context variable: what a first `with` that a copy inherits costs.
CONTEXT_VARIABLE = "floor setting a context variable"
HAPPY_EYEBALLS_DUAL = "happy eyeballs: dual-stack host, ::1 hanging (end to end)"
HAPPY_EYEBALLS_FIRST = "happy eyeballs: two addresses, the first answers (end to end)"
HAPPY_EYEBALLS_SINGLE = "happy eyeballs: one address, nothing to race (end to end)"
# Bounded (max_connections): the checkout with the limit not reached, and contended runs.
BOUNDED_COUNTED = "bounded: checkout+return, limit not reached (instructions, real TCP socket)"
BOUNDED_TIMED = "bounded: checkout+return, limit not reached (timed, real TCP socket)"
BOUNDED_THREADS = "bounded: 16 threads, max_connections=4 (end to end, tcp)"
BOUNDED_TASKS = "bounded: 64 asyncio tasks, max_connections=4 (end to end, tcp)"
GROUPS = [
    *(REAL, STAND_IN, TIMED, REAL_TIMED, ASYNC_COUNTED, ASYNC, FIRST_COUNTED, NESTING),
    *(THREADS, TCP, UNIX),
    *(HAPPY_EYEBALLS_DUAL, HAPPY_EYEBALLS_FIRST, HAPPY_EYEBALLS_SINGLE),
    *(REUSE_COUNTED, ASYNC_REUSE_COUNTED, REUSE_TIMED, REUSE_END_TO_END),
    *(BOUNDED_COUNTED, BOUNDED_TIMED, BOUNDED_THREADS, BOUNDED_TASKS, MEMORY),
]
