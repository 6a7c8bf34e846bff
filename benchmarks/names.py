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
ASYNC = "async dispatch (timed, stand-in socket and loop)"
NESTING = "nesting (timed, stand-in socket)"
THREADS = "4 threads, one shared object (real TCP connections)"
TCP = "connect+close over tcp (end to end)"
UNIX = "connect+close over unix (end to end)"
MEMORY = "memory"
GROUPS = [REAL, STAND_IN, TIMED, ASYNC, NESTING, THREADS, TCP, UNIX, MEMORY]
