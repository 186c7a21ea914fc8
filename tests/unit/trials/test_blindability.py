"""A blinded trial's arms must look alike to blinded staff: any difference in route, dose
volume, number of doses, or the products' route, storage, post-thaw window and temperature
record policy (which the receipt and the bedside show) is named."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from custody.trials import ArmSpec
from custody.trials.protocols import blindability_problems

ARM = {"route": "intravenous", "volume_ml": Decimal("100.0"), "doses": 3}
PRODUCT = {
    "route": "intravenous",
    "storage_limit_c": Decimal("-150.0"),
    "storage_condition": "Vapour phase of liquid nitrogen",
    "post_thaw_window_minutes": 60,
    "temperature_record_required": False,
}
OTHER = {
    "route": "intrathecal",
    "volume_ml": Decimal("1.0"),
    "doses": 1,
    "storage_limit_c": Decimal("-80.0"),
    "storage_condition": "Freezer",
    "post_thaw_window_minutes": 240,
    "temperature_record_required": True,
}
SEEN = {
    "route": "route",
    "volume_ml": "dose volume",
    "doses": "number of doses",
}
PRODUCT_SEEN = {
    "route": "product route",
    "storage_limit_c": "storage limit",
    "storage_condition": "storage condition",
    "post_thaw_window_minutes": "post-thaw window",
    "temperature_record_required": "temperature record policy",
}


def _arms(arm_changes: dict, product_changes: dict):
    active = ArmSpec(code="ACT", name="Active", products=["ACTIVE"], **ARM)
    control = ArmSpec(
        code="CTL", name="Control", products=["SHAM"], control=True, **{**ARM, **arm_changes}
    )
    products = {
        "ACTIVE": SimpleNamespace(**PRODUCT),
        "SHAM": SimpleNamespace(**{**PRODUCT, **product_changes}),
    }
    return [active, control], products


def test_arms_that_look_alike_are_blindable():
    arms, products = _arms({}, {})
    assert blindability_problems(arms, products) == []


@given(
    arm_changed=st.sets(st.sampled_from(sorted(SEEN))),
    product_changed=st.sets(st.sampled_from(sorted(PRODUCT_SEEN))),
)
def test_every_difference_a_blinded_person_sees_is_named(arm_changed, product_changed):
    arms, products = _arms(
        {name: OTHER[name] for name in arm_changed},
        {name: OTHER[name] for name in product_changed},
    )
    problems = " ".join(blindability_problems(arms, products))
    expected = {f"differ in {SEEN[name]}:" for name in arm_changed} | {
        f"products differ in {PRODUCT_SEEN[name]}:" for name in product_changed
    }
    assert {phrase for phrase in expected if phrase in problems} == expected
    assert bool(problems) == bool(arm_changed or product_changed)


def test_what_blinded_staff_never_see_may_differ():
    # The cells and the arm's name are the arm itself: a sham arm has no cells.
    _, products = _arms({}, {})
    arms = [
        ArmSpec(code="ACT", name="Active", products=["ACTIVE"], cells_per_dose=10**8, **ARM),
        ArmSpec(code="CTL", name="Sham", products=["SHAM"], control=True, ratio=3, **ARM),
    ]
    assert blindability_problems(arms, products) == []
