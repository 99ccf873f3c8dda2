"""Alternating rounds, written once for every suite.

Round ``r`` runs the methods rotated by ``r`` places: ``A B``, ``B A`` for two methods, and for
more each method takes every position in turn. So drift on a shared machine (another process
waking up, the CPU clocking down) hits every method alike instead of always the one that runs
last.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def order(names: Sequence[T], round_: int) -> list[T]:
    """The methods in the order round ``round_`` (0-based) runs them."""
    if not names:
        return []
    shift = round_ % len(names)
    return [*names[shift:], *names[:shift]]


def alternate(names: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """``(round, name)`` for ``rounds`` rounds of every name, each round in :func:`order`."""
    for round_ in range(rounds):
        for name in order(names, round_):
            yield round_, name
