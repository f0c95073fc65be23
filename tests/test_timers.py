"""The scheduler's timers (``_scheduler.Timers``): a heap for the near future, buckets of
``TIMER_BUCKET`` seconds beyond it. Pure: no loop, no clock; times are passed in."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskwatch._scheduler import FAR, TIMER_BUCKET, Timers

B = TIMER_BUCKET


class Item:
    """A thing to schedule: what ``Timers`` keeps on a stream, and a name to tell it by."""

    __slots__ = ("due", "generation", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.generation = -1
        self.due = 0.0

    def __repr__(self) -> str:
        return f"Item({self.name!r})"


def drain(timers: Timers[Item], now: float) -> list[str]:
    return [item.name for item in timers.due(now)]


def run_until(timers: Timers[Item], end: float, start: float = 0.0) -> list[tuple[float, str]]:
    """Wake as ``next_at`` says until ``end``: (when, name) of each item given."""
    given_at: list[tuple[float, str]] = []
    now = start
    while True:
        given_at += [(now, name) for name in drain(timers, now)]
        wake = timers.next_at(now)
        if wake is None or wake > end:
            return given_at
        assert wake > now  # never a wake-up that finds nothing to do and asks for now again
        now = wake


def test_near_and_far_times_come_due_at_their_time_in_order() -> None:
    timers: Timers[Item] = Timers()
    times = {"a": 5.0, "b": 3 * B + 1.0, "c": 130.0, "d": 40 * B + 0.5, "e": 3 * B + 0.5}
    items = {name: Item(name) for name in times}
    for name, at in times.items():
        timers.add(items[name], at, now=0.0)
    assert items["a"].generation >= 0  # in the heap
    assert items["b"].generation == FAR  # in a bucket, its time on the item
    assert items["b"].due == 3 * B + 1.0
    given_at = run_until(timers, end=100 * B)
    assert given_at == sorted((at, name) for name, at in times.items())
    assert all(item.generation == -1 for item in items.values())
    assert timers.next_at(100 * B) is None


def test_the_wake_up_for_a_far_bucket_comes_one_bucket_before_it() -> None:
    timers: Timers[Item] = Timers()
    timers.add(Item("far"), 10 * B + 7.0, now=0.0)
    assert timers.next_at(0.0) == 9 * B  # when it moves into the heap
    assert drain(timers, 9 * B) == []
    assert timers.next_at(9 * B) == 10 * B + 7.0  # now in the heap, at its own time
    assert drain(timers, 10 * B + 6.9) == []
    assert drain(timers, 10 * B + 7.0) == ["far"]


def test_an_item_rescheduled_comes_due_once_at_its_last_time() -> None:
    timers: Timers[Item] = Timers()
    moved = [Item(f"m{n}") for n in range(4)]
    plans = [
        [5 * B + 1.0, 2.0],  # far, then near
        [5 * B + 1.0, 9 * B + 3.0],  # far, then another bucket
        [5 * B + 1.0, 5 * B + 9.0],  # far, then later in the same bucket
        [5 * B + 1.0, 9 * B + 3.0, 5 * B + 2.0],  # away and back to its first bucket
    ]
    for item, plan in zip(moved, plans, strict=True):
        for at in plan:
            timers.add(item, at, now=0.0)
    waiting = [item.name for item in timers.waiting()]
    assert sorted(waiting) == ["m0", "m1", "m2", "m3"]  # each once, stale entries skipped
    given_at = run_until(timers, end=20 * B)
    last = {item.name: plan[-1] for item, plan in zip(moved, plans, strict=True)}
    assert given_at == sorted((at, name) for name, at in last.items())


def test_a_cancelled_item_never_comes_due_and_is_not_waiting() -> None:
    timers: Timers[Item] = Timers()
    near, far, kept = Item("near"), Item("far"), Item("kept")
    timers.add(near, 1.0, now=0.0)
    timers.add(far, 7 * B, now=0.0)
    timers.add(kept, 8 * B, now=0.0)
    Timers.cancel(near)
    Timers.cancel(far)
    assert [item.name for item in timers.waiting()] == ["kept"]
    assert run_until(timers, end=20 * B) == [(8 * B, "kept")]


def test_an_endless_time_stays_in_the_heap_and_never_comes_due() -> None:
    timers: Timers[Item] = Timers()
    endless = Item("endless")
    timers.add(endless, math.inf, now=0.0)
    assert endless.generation >= 0
    assert drain(timers, 1e12) == []
    assert timers.next_at(0.0) == math.inf
    assert [item.name for item in timers.waiting()] == ["endless"]


def test_clear_forgets_everything() -> None:
    timers: Timers[Item] = Timers()
    timers.add(Item("near"), 1.0, now=0.0)
    timers.add(Item("far"), 9 * B, now=0.0)
    timers.clear()
    assert timers.next_at(0.0) is None
    assert list(timers.waiting()) == []
    assert drain(timers, 100 * B) == []


@pytest.mark.parametrize("now", [0.0, B - 0.5, 5 * B, 5 * B + 0.5, -3 * B - 1.0, 1e9 + 0.25])
def test_what_is_due_within_the_next_bucket_goes_straight_to_the_heap(now: float) -> None:
    timers: Timers[Item] = Timers()
    edge = (math.floor(now / B) + 2) * B
    inside, outside = Item("inside"), Item("outside")
    timers.add(inside, edge - 1e-6, now=now)
    timers.add(outside, edge, now=now)
    assert inside.generation >= 0
    assert outside.generation == FAR


# A random history of schedules, cancellations and wake-ups, against a plain dict of the
# times each item is due: the timers give every item due by each wake-up, earliest first,
# once, and never wake later than the earliest time due.
_STEP = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, 5),
        st.floats(0.0, 12 * B, allow_nan=False),  # how far ahead of now
    ),
    st.tuples(st.just("cancel"), st.integers(0, 5), st.just(0.0)),
    st.tuples(st.just("advance"), st.just(0), st.floats(0.0, 4 * B, allow_nan=False)),
)


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False), st.lists(_STEP, max_size=60))
def test_timers_agree_with_a_plain_table_of_times(
    start: float, steps: list[tuple[str, int, float]]
) -> None:
    timers: Timers[Item] = Timers()
    items = [Item(str(n)) for n in range(6)]
    expected: dict[str, float] = {}
    now = start

    def check_wake() -> None:
        wake = timers.next_at(now)
        if not expected:
            return  # a stale bucket may still ask for a wake-up: harmless, nothing is due
        assert wake is not None
        assert wake <= min(expected.values())  # never sleeps past a time due

    for action, index, amount in steps:
        item = items[index]
        if action == "add":
            timers.add(item, now + amount, now)
            expected[item.name] = now + amount
        elif action == "cancel":
            Timers.cancel(item)
            expected.pop(item.name, None)
        else:
            # wake up as often as next_at asks on the way to ``now + amount``
            target = now + amount
            while True:
                check_wake()
                wake = timers.next_at(now)
                now = target if wake is None or wake > target else wake
                given = [item.name for item in timers.due(now)]
                due = sorted(name for name, at in expected.items() if at <= now)
                assert sorted(given) == due  # each once
                times = [expected.pop(name) for name in given]
                assert times == sorted(times)  # earliest first
                if now >= target:
                    break
        assert sorted(item.name for item in timers.waiting()) == sorted(expected)
    check_wake()
