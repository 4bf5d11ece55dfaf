"""The garbage collector's thresholds while an API process serves (the lifespan in app/main.py)."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from app.core.config import Settings

# Allocations between two collections of the youngest generation (Python's default: 700). A request allocates
# hundreds of objects, nearly all freed by reference counting as it ends; at 700 the collector still ran every
# request or two and walked them while alive (about 4 % of a GET's instructions, more of a POST's). Garbage in
# reference cycles waits longer for its collection: at most this many objects more at a time.
GC_YOUNG_THRESHOLD = 10_000


@contextmanager
def fewer_young_collections(settings: Settings) -> Iterator[None]:
    """A collection of the youngest generation every GC_YOUNG_THRESHOLD allocations while the app serves (the
    previous threshold back at shutdown: it is the process's). The test suite keeps Python's default, as the
    worker does (docs/decisions.md)."""
    if settings.APP_ENVIRONMENT == "test":
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
