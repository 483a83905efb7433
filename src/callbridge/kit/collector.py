"""The cyclic garbage collector of a serving process: what it may skip, how often it runs.

A callbridge process keeps what it builds at start-up (modules, the app and its routes,
the database engine and its pools, the outbound client, compiled caches) for as long as
it runs. Python's collector walks every container object it tracks on each full
collection, and the PBX's requests trigger collections all the time: at 50 concurrent
IVR callers, full collections over those long-lived objects were about a tenth of the
process's CPU. ``gc.freeze()`` moves the objects alive now out of the collector's
generations; they are still freed by reference counting, only not walked for cycles.
"""

from __future__ import annotations

import gc

# Container allocations (net of frees) between two young collections. Python's default,
# 700, predates today's object counts: a request to callbridge allocates thousands, most
# of them dead before the next collection; with a larger young generation fewer of them
# are promoted and walked again by the older collections. Python 3.13 raised it to 2,000.
YOUNG_THRESHOLD = 10_000


def settle_long_lived_objects() -> None:
    """Collect what is garbage now, freeze what is alive, and collect the young
    generation less often. For a process that serves (``callbridge serve``), after it
    has built what it keeps, and for the supervisor of several before it forks them (what
    they inherit stays shared); tests and tools that build many apps in one process do not
    call it (frozen objects are never collected as cycles)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
