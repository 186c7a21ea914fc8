"""Permuted-block randomization lists: exact ratios per block, reproducible from the seed."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from custody.trials import Generator, commitment, generate_list

SEPSIS = [("ARM-ACT", 3), ("ARM-SHAM", 1)]

arms = st.lists(
    st.tuples(st.text("ABCDEFGH", min_size=1, max_size=4), st.integers(1, 4)),
    min_size=2,
    max_size=3,
    unique_by=lambda arm: arm[0],
)
multipliers = st.lists(st.integers(1, 3), min_size=1, max_size=3)


def blocks(slots):
    grouped: dict[int, list] = {}
    for slot in slots:
        grouped.setdefault(slot.block, []).append(slot)
    return grouped


@settings(max_examples=60, deadline=None)
@given(arms=arms, multipliers=multipliers, seed=st.text(max_size=12), length=st.integers(0, 60))
def test_every_block_holds_the_exact_ratio(arms, multipliers, seed, length):
    slots = generate_list(arms, multipliers, seed, "AMU-SW-ICU", length)
    unit = sum(ratio for _, ratio in arms)
    for members in blocks(slots).values():
        size = len(members)
        assert size % unit == 0
        assert size // unit in multipliers
        assert {slot.block_size for slot in members} == {size}
        counts = Counter(slot.arm for slot in members)
        assert counts == {code: ratio * size // unit for code, ratio in arms}
    assert [slot.sequence for slot in slots] == list(range(1, len(slots) + 1))
    assert len(slots) >= length


@settings(max_examples=30, deadline=None)
@given(seed=st.text(max_size=12), stratum=st.text(min_size=1, max_size=10))
def test_the_same_seed_and_stratum_give_the_same_list(seed, stratum):
    assert generate_list(SEPSIS, [1, 2], seed, stratum, 40) == generate_list(
        SEPSIS, [1, 2], seed, stratum, 40
    )


def test_another_stratum_gets_another_list():
    icu = [slot.arm for slot in generate_list(SEPSIS, [1, 2], "seed-1", "AMU-SW-ICU", 180)]
    other = [slot.arm for slot in generate_list(SEPSIS, [1, 2], "seed-1", "DMU1-ICU", 180)]
    assert icu != other


def test_another_seed_gets_another_list():
    first = [slot.arm for slot in generate_list(SEPSIS, [1, 2], "seed-1", "AMU-SW-ICU", 180)]
    second = [slot.arm for slot in generate_list(SEPSIS, [1, 2], "seed-2", "AMU-SW-ICU", 180)]
    assert first != second


def test_180_participants_at_3_to_1_are_135_active_and_45_control():
    slots = generate_list(SEPSIS, [1, 2], "NCT06882811-demo-2026", "AMU-SW-ICU", 180)
    assert len(slots) == 180
    assert Counter(slot.arm for slot in slots) == {"ARM-ACT": 135, "ARM-SHAM": 45}


def test_blocks_of_3_to_1_are_4_or_8_long_and_both_sizes_occur():
    slots = generate_list(SEPSIS, [1, 2], "NCT06882811-demo-2026", "AMU-SW-ICU", 180)
    assert {slot.block_size for slot in slots} == {4, 8}


def test_a_length_the_smallest_block_does_not_divide_ends_on_a_complete_block():
    slots = generate_list(SEPSIS, [1, 2], "s", "X", 10)
    assert len(slots) == 12
    assert Counter(slot.arm for slot in slots) == {"ARM-ACT": 9, "ARM-SHAM": 3}


def test_the_list_is_a_fixed_vector_of_its_seed():
    # An auditor's regeneration must match what was stored years ago, on any Python.
    assert [slot.arm for slot in generate_list(SEPSIS, [1, 2], "v", "S", 8)] == FIXED_VECTOR
    assert Generator("v", "S").below(1000) == Generator("v", "S").below(1000)


def test_the_commitment_hides_the_arm_but_binds_it():
    made = commitment("seed", "AMU-SW-ICU", 1, "ARM-ACT")
    assert made == commitment("seed", "AMU-SW-ICU", 1, "ARM-ACT")
    assert made != commitment("seed", "AMU-SW-ICU", 1, "ARM-SHAM")
    assert "ARM" not in made


FIXED_VECTOR = [*["ARM-ACT"] * 5, "ARM-SHAM", "ARM-SHAM", "ARM-ACT"]
