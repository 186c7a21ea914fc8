"""Test world builders."""

from __future__ import annotations

from app.demo.trials import SEPSIS_TRIAL
from custody.trials import get_trial, kit_expiry, trial_kits
from labels.keys import parse_label_keys
from labels.payload import vial_uri
from tests.worlds.config import TEST_LABEL_KEYS


def forbidden_tokens(session) -> list[str]:
    trial = get_trial(session, SEPSIS_TRIAL)
    tokens = set()
    for arm in trial.arms:
        tokens |= {arm.code, arm.name}
        for link in arm.products:
            tokens |= {link.product.code, link.product.gtin, link.product.current.name}
    for kit in trial_kits(session, trial):
        tokens |= {kit.vial.serial, kit.vial.lot.number}
    return sorted(tokens)


def kit_label(session, app, number="000001"):
    trial = get_trial(session, SEPSIS_TRIAL)
    kit = next(kit for kit in trial_kits(session, trial) if kit.number == number)
    return vial_uri(
        base="https://trail.example.org",
        gtin=trial.blinded_gtin,
        lot=kit.packaging_lot,
        serial=kit.number,
        expiry=kit_expiry(session, trial, kit.packaging_lot),
        key=parse_label_keys(TEST_LABEL_KEYS)[0],
    )
