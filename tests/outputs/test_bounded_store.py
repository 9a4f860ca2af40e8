"""outputs.bounded_store: values kept under tokens never exceed the count, byte and age bounds; outputs.memory trims."""

from __future__ import annotations

import sys

import pytest

from outputs.bounded_store import BoundedStore
from outputs.memory import release_free_memory


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _store(clock: Clock | None = None, max_items: int = 3, max_bytes: int = 100) -> BoundedStore[bytes]:
    return BoundedStore(max_items, max_bytes, max_age_s=60, size_of=len, clock=clock or Clock())


def test_the_oldest_values_go_first_when_the_count_bound_is_reached():
    store = _store()
    tokens = [store.put(bytes([i])) for i in range(5)]
    assert len(store) == 3 and store.take(tokens[0]) is None and store.take(tokens[4]) == b"\x04"


def test_the_byte_bound_evicts_and_a_value_too_big_alone_is_not_kept():
    store = _store(max_items=10)
    first = store.put(b"a" * 60)
    second = store.put(b"b" * 60)
    assert store.take(first) is None and store.nbytes == 60
    huge = store.put(b"c" * 101)
    assert store.take(huge) is None and store.take(second) == b"b" * 60 and store.nbytes == 0


def test_values_expire_after_their_age_and_take_removes_them():
    clock = Clock()
    store = _store(clock)
    old = store.put(b"old")
    clock.now = 30
    kept = store.put(b"new")
    clock.now = 61
    assert store.take(old) is None and len(store) == 1
    assert store.take(kept) == b"new" and store.take(kept) is None
    store.discard("never-issued")


def test_tokens_are_unguessable_and_distinct():
    store = _store(max_items=100, max_bytes=10_000)
    tokens = {store.put(b"x") for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 16 for t in tokens)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        BoundedStore(0, 10, 1.0, size_of=len)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_memory_can_be_returned_on_glibc():
    assert release_free_memory() is True
