"""The access policy: roles decide actions, sites decide visibility."""

from dataclasses import dataclass

import pytest

from lots.access import POLICY, Permission, Role, can, can_see


@dataclass
class Someone:
    role: str
    site_id: int = 1


def test_every_permission_has_a_rule():
    assert set(POLICY) == set(Permission)


@pytest.mark.parametrize("role", [Role.COURIER, Role.CLINICIAN, Role.QC, Role.AUDITOR])
def test_only_admins_and_qa_change_products(role):
    assert not can(Someone(role), Permission.PRODUCTS_WRITE)


def test_qa_changes_products():
    assert can(Someone(Role.QA), Permission.PRODUCTS_WRITE)


def test_auditors_read_but_never_write_the_ledger():
    auditor = Someone(Role.AUDITOR)
    assert can(auditor, Permission.LEDGER_READ)
    assert not can(auditor, Permission.LEDGER_WRITE)


def test_a_courier_sees_records_of_his_own_site_only():
    courier = Someone(Role.COURIER, site_id=4)
    assert can_see(courier, [4, 9])
    assert not can_see(courier, [9])


def test_qa_sees_every_site():
    assert can_see(Someone(Role.QA, site_id=1), [9])


def test_a_record_no_site_owns_is_visible_to_everyone():
    assert can_see(Someone(Role.CLINICIAN), [None])
