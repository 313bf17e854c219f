"""The garbage collector and a long-running server's heap.

A full (generation 2) collection walks every tracked object: in the API process that is
the startup heap (modules, pydantic schemas, SQLAlchemy mappings, the runtime's parts), a
few hundred thousand objects that live as long as the process. A campaign send allocates
enough objects to trigger a full collection, and walking that heap cost ~150 ms of CPU
per 10,000-recipient send (bench/campaign_send.py --stages). Frozen once after startup,
the collector ignores them; what a request allocates is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> bool:
    """Move every object allocated so far out of the collector's reach, unless something
    already is frozen (a second app in the same process, as in tests); whether it did."""
    # The collector's own count, not a module flag: whoever unfroze (a test that froze
    # and unfroze around a timing loop) has handed the heap back to the collector.
    if gc.get_freeze_count():
        return False
    # Collect first: garbage frozen now would never be collected.
    gc.collect()
    gc.freeze()
    return True
