"""Permuted-block randomization lists, regenerable for audit from the trial's seed: pure."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Slot:
    """One line of a stratum's list: the arm the n-th subject randomized there receives."""

    sequence: int
    block: int
    block_size: int
    arm: str


class Generator:
    """HMAC-DRBG-style draws (HMAC-SHA256 in counter mode) keyed by the trial's seed.

    The same seed and stratum give the same draws on any machine and Python version, unlike
    `random.Random`, whose algorithms are not promised to stay put; an auditor given the seed
    can regenerate the list with the standard library alone.
    """

    def __init__(self, seed: str, stratum: str) -> None:
        self._key = hmac.new(seed.encode(), f"stratum:{stratum}".encode(), hashlib.sha256).digest()
        self._counter = 0

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), by rejection sampling (no modulo bias)."""
        if bound < 1:
            raise ValueError("bound must be positive")
        limit = (1 << 64) - (1 << 64) % bound
        while True:
            self._counter += 1
            block = hmac.new(self._key, self._counter.to_bytes(8, "big"), hashlib.sha256)
            value = int.from_bytes(block.digest()[:8], "big")
            if value < limit:
                return value % bound

    def shuffle(self, items: list[str]) -> None:
        """Fisher-Yates, in place."""
        for index in range(len(items) - 1, 0, -1):
            other = self.below(index + 1)
            items[index], items[other] = items[other], items[index]


def ratio_sum(arms: Sequence[tuple[str, int]]) -> int:
    """The smallest complete block: one of each arm per unit of its ratio (3:1 → 4)."""
    if not arms or any(ratio < 1 for _, ratio in arms):
        raise ValueError("every arm needs a ratio of at least 1")
    return sum(ratio for _, ratio in arms)


def generate_list(
    arms: Sequence[tuple[str, int]],
    multipliers: Sequence[int],
    seed: str,
    stratum: str,
    length: int,
) -> list[Slot]:
    """Complete permuted blocks until the list holds at least `length` slots.

    Each block's size is a multiple (drawn from `multipliers`) of the ratio sum, and each
    block holds the arms in the exact ratio. Near the end only sizes that still fit are
    drawn, so a length the smallest block divides is filled exactly; otherwise the last block
    runs past `length` rather than being cut (a cut block would break the ratio).
    """
    unit = ratio_sum(arms)
    sizes = sorted(set(multipliers))
    if not sizes or sizes[0] < 1:
        raise ValueError("block multipliers must be positive integers")
    if length < 0:
        raise ValueError("length must not be negative")
    draw = Generator(seed, stratum)
    slots: list[Slot] = []
    block = 0
    while len(slots) < length:
        remaining = length - len(slots)
        fitting = [m for m in sizes if m * unit <= remaining] or sizes[:1]
        multiplier = fitting[draw.below(len(fitting))]
        content = [code for code, ratio in arms for _ in range(ratio * multiplier)]
        draw.shuffle(content)
        block += 1
        start = len(slots) + 1
        slots.extend(
            Slot(sequence=start + offset, block=block, block_size=len(content), arm=arm)
            for offset, arm in enumerate(content)
        )
    return slots


def commitment(seed: str, stratum: str, sequence: int, arm: str) -> str:
    """A keyed commitment to a slot's arm for the ledger: it hides the arm from whoever reads
    the ledger without the seed, and lets an auditor holding the seed check the assignment."""
    message = f"{stratum}:{sequence}:{arm}".encode()
    return hmac.new(seed.encode(), message, hashlib.sha256).hexdigest()
