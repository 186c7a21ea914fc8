"""Throttling that slows a guesser and never locks out the honest (NIST SP 800-63B §5.2.2):
per account with backoff, per address only at rates no hospital reaches."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from lots.accounts import (
    LoginPolicy,
    authenticate,
    consecutive_failures,
    create_user,
    password_hasher,
)
from lots.errors import AccountLockedError, AuthenticationError, TooManyAttemptsError
from lots.models import LoginAttempt, User
from lots.signatures import SignatureRefusedError, sign

HASHER = password_hasher("cheapest")
PASSWORD = "sturdy-kettle-harbour-41"
T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


def _person(session, role: str) -> User:
    """A user of its own, so no other test's committed attempts count against it."""
    return create_user(
        session,
        HASHER,
        actor="admin",
        username=f"{role}-{uuid.uuid4().hex[:8]}",
        full_name=f"Throttle {role}",
        role=role,
        site_code="XSM-QC",
        password=PASSWORD,
    )


@pytest.fixture
def qc(session) -> User:
    return _person(session, "qc")


@pytest.fixture
def qa(session) -> User:
    return _person(session, "qa")


def _try(session, username, password, *, at, address="198.51.100.7", channel="api", **policy):
    return authenticate(
        session,
        HASHER,
        username=username,
        password=password,
        remote_addr=address,
        channel=channel,
        policy=LoginPolicy(**policy),
        now=at,
    )


def _fail(session, username, times, *, at=T0, address="198.51.100.7", channel="api", **policy):
    for _ in range(times):
        with pytest.raises((AuthenticationError, TooManyAttemptsError)):
            _try(session, username, "wrong", at=at, address=address, channel=channel, **policy)


@given(failures=st.integers(min_value=0, max_value=500))
def test_the_wait_doubles_from_the_free_failures_and_never_exceeds_the_longest(failures):
    policy = LoginPolicy()
    wait = policy.wait_after(failures)
    assert dt.timedelta(0) <= wait <= policy.longest_wait
    if failures < policy.free_failures:
        assert wait == dt.timedelta(0)
    else:
        doublings = failures - policy.free_failures
        expected = policy.first_wait * 2**doublings if doublings < 5 else policy.longest_wait
        assert wait == min(expected, policy.longest_wait)
        assert policy.wait_after(failures + 1) >= wait


def test_after_five_failures_the_account_waits_even_with_the_right_password(session, qc, qa):
    _fail(session, qc.username, 5)
    with pytest.raises(TooManyAttemptsError) as refused:
        _try(session, qc.username, PASSWORD, at=T0 + 10 * SECOND)
    assert refused.value.retry_after_seconds == 20
    assert "this account" in refused.value.detail


def test_attempts_refused_during_the_wait_do_not_renew_it(session, qc, qa):
    _fail(session, qc.username, 5)
    for seconds in range(1, 30, 3):  # a confused user keeps pressing "sign in"
        with pytest.raises(TooManyAttemptsError) as refused:
            _try(session, qc.username, "wrong", at=T0 + seconds * SECOND)
        assert refused.value.retry_after_seconds == 30 - seconds
    assert _try(session, qc.username, PASSWORD, at=T0 + 30 * SECOND).username == qc.username
    refused_rows = session.scalars(
        select(LoginAttempt).where(LoginAttempt.username == qc.username, LoginAttempt.throttled)
    ).all()
    assert len(refused_rows) == 10
    assert all(not row.succeeded for row in refused_rows)


def test_each_failure_after_the_wait_doubles_it(session, qc, qa):
    _fail(session, qc.username, 5)
    at = T0
    for expected in (60, 120, 240, 480, 900, 900):
        at += dt.timedelta(seconds=expected // 2 if expected < 900 else 900)
        _fail(session, qc.username, 1, at=at)
        with pytest.raises(TooManyAttemptsError) as refused:
            _try(session, qc.username, PASSWORD, at=at)
        assert refused.value.retry_after_seconds == expected


def test_a_success_starts_the_count_again(session, qc, qa):
    _fail(session, qc.username, 4)
    _try(session, qc.username, PASSWORD, at=T0 + SECOND)
    _fail(session, qc.username, 4, at=T0 + 2 * SECOND)
    assert consecutive_failures(session, qc.username)[0] == 4
    assert _try(session, qc.username, PASSWORD, at=T0 + 3 * SECOND).username == qc.username


def test_after_the_most_consecutive_failures_only_a_reset_unlocks(session, qc, qa):
    _fail(session, qc.username, 3, first_wait=dt.timedelta(0), max_consecutive_failures=3)
    with pytest.raises(AccountLockedError) as locked:
        _try(
            session,
            qc.username,
            PASSWORD,
            at=T0 + dt.timedelta(days=30),
            max_consecutive_failures=3,
        )
    assert locked.value.status == 423
    assert "administrator must reset" in locked.value.detail


def test_an_unknown_username_waits_like_a_known_one(session, qc, qa):
    """The throttle answers alike for names that exist and names that do not."""
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"
    _fail(session, nobody, 5)
    with pytest.raises(TooManyAttemptsError) as refused:
        _try(session, nobody, "x", at=T0 + SECOND)
    assert refused.value.retry_after_seconds == 29


def test_twenty_failures_of_others_from_one_address_do_not_refuse_a_correct_signature(
    session, qc, qa
):
    """The issue's case: one confused user behind a hospital's NAT address."""
    for username in ("pharmacist", "pharmacist-amu", "clinician", "nobody"):
        _fail(session, username, 5, channel="web")
    manifestation = sign(
        session, HASHER, qa, password=PASSWORD, meaning="Released", remote_addr="198.51.100.7"
    )
    assert manifestation["user"] == qa.username
    assert _try(session, qc.username, PASSWORD, at=T0 + SECOND).username == qc.username


def _refused_signature(session, user, password, error=SignatureRefusedError):
    """As a request does it: the signing work is rolled back, then the refusal recorded."""
    request = session.begin_nested()
    with pytest.raises(error) as refused:
        sign(session, HASHER, user, password=password, meaning="Released", remote_addr="10.9.9.9")
    request.rollback()
    refused.value.after_rollback(session)
    session.flush()


def test_signature_failures_count_against_the_account_only(session, qc, qa):
    for _ in range(5):
        _refused_signature(session, qa, "wrong")
    with pytest.raises(TooManyAttemptsError):
        _try(session, qa.username, PASSWORD, at=dt.datetime.now(dt.UTC), address="10.1.1.1")
    # the same address, another account: not refused
    assert _try(session, qc.username, PASSWORD, at=dt.datetime.now(dt.UTC), address="10.9.9.9")


def test_a_refused_signature_during_the_wait_is_recorded_as_throttled_not_as_a_failure(
    session, qc, qa
):
    _fail(session, qa.username, 5, at=dt.datetime.now(dt.UTC))
    _refused_signature(session, qa, PASSWORD, error=TooManyAttemptsError)
    assert consecutive_failures(session, qa.username)[0] == 5
    latest = session.scalars(
        select(LoginAttempt).where(LoginAttempt.channel == "signature").order_by(LoginAttempt.id)
    ).all()[-1]
    assert (latest.username, latest.succeeded, latest.throttled) == (qa.username, False, True)


def test_over_the_address_limit_an_account_without_failures_of_its_own_still_signs_in(
    session, qc, qa
):
    limit = {"max_failures_per_address": 6}
    for username in ("pharmacist", "clinician", "nobody"):
        _fail(session, username, 2, **limit)
    assert _try(session, qc.username, PASSWORD, at=T0 + SECOND, **limit).username == qc.username
    with pytest.raises(TooManyAttemptsError) as refused:
        _try(session, qa.username, "wrong", at=T0 + SECOND, **limit)
    assert "network address" in refused.value.detail
    assert refused.value.retry_after_seconds == 15 * 60 - 1
    with pytest.raises(TooManyAttemptsError):  # its own failure now counts with the address's
        _try(session, qa.username, PASSWORD, at=T0 + 2 * SECOND, **limit)
    # signatures are never limited by address
    assert sign(session, HASHER, qa, password=PASSWORD, meaning="Released")
