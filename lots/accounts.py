"""Sites, users, passwords, sign-in and bearer tokens."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
import secrets
from dataclasses import dataclass
from functools import partial

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lots.access import Role
from lots.audit import record_change
from lots.base import utcnow
from lots.errors import (
    AccountLockedError,
    AlreadyExistsError,
    AuthenticationError,
    DomainError,
    InvalidValueError,
    NotFoundError,
    TooManyAttemptsError,
)
from lots.local_time import is_time_zone
from lots.models import ApiToken, LoginAttempt, Site, SiteKind, User
from lots.passwords import password_problem

TOKEN_PREFIX = "ct_"  # noqa: S105 - a visible prefix, so leaked tokens are recognisable
# A hash of a password nobody has, so an unknown username costs as much as a wrong password.
_UNKNOWN_USER_PASSWORD = "celltrail-no-such-user"  # noqa: S105 - not a credential


@dataclass(frozen=True)
class LoginPolicy:
    """Throttling that slows a guesser and never locks out the honest (NIST SP 800-63B §5.2.2).

    An account's consecutive failures (logins and e-signatures alike, since its last success)
    are free up to `free_failures`; each later one makes the account wait twice as long as the
    one before, from `first_wait` up to `longest_wait`; after `max_consecutive_failures` it is
    locked until an administrator resets its password. An attempt refused while the account
    waits is recorded but is not a failure: the wait never renews itself. The per-address
    limit counts failed *logins* only, at a rate no hospital behind one address reaches, and
    even then an account with no failures of its own signs in with its correct password.
    """

    free_failures: int = 5
    first_wait: dt.timedelta = dt.timedelta(seconds=30)
    longest_wait: dt.timedelta = dt.timedelta(minutes=15)
    max_consecutive_failures: int = 100
    max_failures_per_address: int = 1000
    window: dt.timedelta = dt.timedelta(minutes=15)

    def wait_after(self, failures: int) -> dt.timedelta:
        """How long the account waits after its `failures`-th consecutive failure."""
        if failures < self.free_failures:
            return dt.timedelta(0)
        doublings = min(failures - self.free_failures, 20)
        wait: dt.timedelta = self.first_wait * (2**doublings)
        return min(wait, self.longest_wait)


LOGIN_CHANNELS = ("web", "api")  # an address limit counts these; signatures count per account


def password_hasher(profile: str = "default") -> PasswordHasher:
    """The argon2id hasher; `cheapest` exists for test suites only."""
    if profile == "cheapest":
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)
    return PasswordHasher()  # argon2id, RFC 9106 low-memory profile


def create_site(
    session: Session,
    *,
    actor: str,
    code: str,
    name: str,
    kind: str,
    time_zone: str,
    gln: str | None = None,
    supplied_by_code: str | None = None,
    plain_wristbands_allowed: bool = False,
) -> Site:
    """Register a site, with the IANA time zone its local dates are judged in.

    A ward names the hospital pharmacy that supplies it; no other kind of site is supplied.
    """
    if kind not in set(SiteKind):
        raise InvalidValueError("kind", f"{kind!r} is not a site kind.")
    if not is_time_zone(time_zone):
        raise InvalidValueError(
            "time_zone", f"{time_zone!r} is not an IANA time zone (e.g. Asia/Shanghai)."
        )
    if session.scalar(select(Site.id).where(Site.code == code)) is not None:
        raise AlreadyExistsError("site", code)
    if gln is not None and session.scalar(select(Site.id).where(Site.gln == gln)) is not None:
        raise AlreadyExistsError("site with GLN", gln)
    pharmacy = _supplier(session, kind, supplied_by_code)
    site = Site(
        code=code,
        name=name,
        kind=kind,
        gln=gln,
        time_zone=time_zone,
        supplied_by=pharmacy,
        plain_wristbands_allowed=plain_wristbands_allowed,
    )
    session.add(site)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="site.created",
        entity_type="site",
        entity_key=code,
        old=None,
        new={
            "code": code,
            "name": name,
            "kind": kind,
            "gln": gln,
            "time_zone": time_zone,
            "supplied_by": supplied_by_code,
            "plain_wristbands_allowed": plain_wristbands_allowed,
        },
    )
    return site


def _supplier(session: Session, kind: str, code: str | None) -> Site | None:
    if kind != SiteKind.WARD:
        if code is not None:
            raise InvalidValueError("supplied_by", "Only a ward is supplied by a pharmacy.")
        return None
    if code is None:
        raise InvalidValueError(
            "supplied_by", "A ward names the hospital pharmacy that supplies it."
        )
    pharmacy = session.scalar(select(Site).where(Site.code == code))
    if pharmacy is None or pharmacy.kind != SiteKind.HOSPITAL_PHARMACY:
        raise InvalidValueError("supplied_by", f"{code} is not a hospital pharmacy.")
    return pharmacy


def get_site(session: Session, code: str) -> Site:
    """The site with this code."""
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFoundError("site", code)
    return site


def create_user(
    session: Session,
    hasher: PasswordHasher,
    *,
    actor: str,
    username: str,
    full_name: str,
    role: str,
    site_code: str,
    password: str,
    unblinded: bool = False,
) -> User:
    """Create a user at a site with a role; the password is stored as an argon2id hash."""
    if role not in set(Role):
        raise InvalidValueError("role", f"{role!r} is not a role.")
    _check_password(password, username)
    site = get_site(session, site_code)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AlreadyExistsError("user", username)
    user = User(
        username=username,
        full_name=full_name,
        role=role,
        site=site,
        unblinded=unblinded,
        password_hash=hasher.hash(password),
    )
    session.add(user)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.created",
        entity_type="user",
        entity_key=username,
        old=None,
        new=user_snapshot(user),
    )
    return user


def update_user(
    session: Session,
    *,
    actor: str,
    username: str,
    full_name: str | None = None,
    role: str | None = None,
    site_code: str | None = None,
    unblinded: bool | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's name, role, site, blinding or activity; the audit keeps both values."""
    user = get_user(session, username)
    old = user_snapshot(user)
    if role is not None:
        if role not in set(Role):
            raise InvalidValueError("role", f"{role!r} is not a role.")
        user.role = role
    if site_code is not None:
        user.site = get_site(session, site_code)
    if full_name is not None:
        user.full_name = full_name
    if unblinded is not None:
        user.unblinded = unblinded
    if active is not None:
        user.active = active
    session.flush()
    new = user_snapshot(user)
    if new != old:
        record_change(
            session,
            actor=actor,
            action="user.updated",
            entity_type="user",
            entity_key=username,
            old=old,
            new=new,
        )
    return user


def get_user(session: Session, username: str) -> User:
    """The user with this username."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFoundError("user", username)
    return user


def user_snapshot(user: User) -> dict[str, object]:
    """The audited fields of a user (never the password hash)."""
    return {
        "username": user.username,
        "full_name": user.full_name,
        "role": user.role,
        "site": user.site.code,
        "unblinded": user.unblinded,
        "active": user.active,
    }


def authenticate(
    session: Session,
    hasher: PasswordHasher,
    *,
    username: str,
    password: str,
    remote_addr: str,
    channel: str,
    policy: LoginPolicy | None = None,
    now: dt.datetime | None = None,
) -> User:
    """Check a username and password, recording the attempt; refuse while rate-limited.

    The attempt row is the audit of a failed login and feeds the throttle: a caller that
    commits its work commits it; a refusal also carries `after_rollback`, which keeps it when
    the request's work is rolled back instead.
    """
    policy = policy or LoginPolicy()
    now = now or utcnow()

    attempt = partial(
        record_attempt,
        username=username,
        remote_addr=remote_addr,
        channel=channel,
        at=now,
    )

    def refused(error: DomainError, *, throttled: bool = False) -> DomainError:
        # Kept even when the request's work is rolled back: the audit and the throttle.
        attempt(session, succeeded=False, throttled=throttled)
        error.after_rollback = partial(attempt, succeeded=False, throttled=throttled)
        return error

    try:
        failures = _refuse_while_the_account_waits(session, username[:64], policy, now)
    except (TooManyAttemptsError, AccountLockedError) as error:
        raise refused(error, throttled=True) from None  # not a guess: the wait does not renew
    user = session.scalar(select(User).where(User.username == username))
    ok = _password_matches(hasher, user, password)
    address_retry = (
        _address_retry_after(session, remote_addr[:64], policy, now)
        if channel in LOGIN_CHANNELS
        else None
    )
    # Over the address limit, only an account with no failures of its own still signs in.
    if not ok or user is None or (address_retry is not None and failures):
        if address_retry is not None:
            raise refused(TooManyAttemptsError(retry_after_seconds=address_retry, by_address=True))
        raise refused(AuthenticationError("The username or password is wrong."))
    attempt(session, succeeded=True)
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    return user


def record_attempt(
    session: Session,
    *,
    username: str,
    remote_addr: str,
    channel: str,
    succeeded: bool,
    throttled: bool = False,
    at: dt.datetime | None = None,
) -> None:
    """Keep one sign-in, e-signature or password-change attempt."""
    session.add(
        LoginAttempt(
            username=username[:64],
            remote_addr=remote_addr[:64],
            channel=channel,
            succeeded=succeeded,
            throttled=throttled,
            at=at or utcnow(),
        )
    )
    session.flush()


def consecutive_failures(session: Session, username: str) -> tuple[int, dt.datetime | None]:
    """The account's failed attempts since its last success (or reset), and the latest one's
    time; attempts refused while it waited are not failures."""
    last_success = (
        select(func.coalesce(func.max(LoginAttempt.id), 0))
        .where(LoginAttempt.username == username, LoginAttempt.succeeded.is_(True))
        .scalar_subquery()
    )
    count, latest = session.execute(
        select(func.count(LoginAttempt.id), func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.throttled.is_(False),
            LoginAttempt.id > last_success,
        )
    ).one()
    return int(count), latest


def _refuse_while_the_account_waits(
    session: Session, username: str, policy: LoginPolicy, now: dt.datetime
) -> int:
    """Refuse while the account waits or is locked; else its consecutive failures."""
    failures, latest = consecutive_failures(session, username)
    if failures >= policy.max_consecutive_failures:
        raise AccountLockedError(failures)
    if latest is not None:
        until = latest + policy.wait_after(failures)
        if until > now:
            raise TooManyAttemptsError(retry_after_seconds=_seconds(until - now))
    return failures


def _address_retry_after(
    session: Session, remote_addr: str, policy: LoginPolicy, now: dt.datetime
) -> int | None:
    since = now - policy.window
    count, oldest = session.execute(
        select(func.count(LoginAttempt.id), func.min(LoginAttempt.at)).where(
            LoginAttempt.remote_addr == remote_addr,
            LoginAttempt.channel.in_(LOGIN_CHANNELS),
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.throttled.is_(False),
            LoginAttempt.at > since,
        )
    ).one()
    if count < policy.max_failures_per_address:
        return None
    return _seconds(oldest + policy.window - now)


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def change_password(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    *,
    current: str,
    new: str,
    remote_addr: str,
    now: dt.datetime | None = None,
) -> int:
    """The user replaces their own password, proving the current one (a wrong one counts
    against the account like a login). Every bearer token is revoked and every page session
    ends; returns how many tokens were revoked. The failed attempt of a wrong current password
    is kept through the error's `after_rollback`."""
    now = now or utcnow()
    try:
        authenticate(
            session,
            hasher,
            username=user.username,
            password=current,
            remote_addr=remote_addr,
            channel="password",
            now=now,
        )
    except AuthenticationError as error:
        wrong = InvalidValueError("current_password", "The current password is wrong.")
        wrong.after_rollback = error.after_rollback  # the failed attempt outlives the rollback
        raise wrong from error
    if new == current:
        raise InvalidValueError("new_password", "The new password must differ from the current.")
    _check_password(new, user.username, field="new_password")
    revoked = _set_password(session, hasher, user, new, now=now, must_change=False)
    record_change(
        session,
        actor=user.username,
        action="user.password_changed",
        entity_type="user",
        entity_key=user.username,
        old={},
        new={"revoked_tokens": revoked},
    )
    return revoked


def reset_password(
    session: Session,
    hasher: PasswordHasher,
    *,
    actor: User,
    username: str,
    temporary: str,
    remote_addr: str,
    now: dt.datetime | None = None,
) -> User:
    """An administrator sets a temporary password that must be changed at the next sign-in;
    the user's tokens and sessions end, and a lock from failed attempts is lifted."""
    now = now or utcnow()
    user = get_user(session, username)
    if user.id == actor.id:
        raise InvalidValueError("username", "Change your own password, do not reset it.")
    _check_password(temporary, user.username, field="temporary_password")
    revoked = _set_password(session, hasher, user, temporary, now=now, must_change=True)
    # A success row ends the run of consecutive failures: the reset is the unlock.
    record_attempt(
        session,
        username=user.username,
        remote_addr=remote_addr,
        channel="reset",
        succeeded=True,
        at=now,
    )
    record_change(
        session,
        actor=actor.username,
        action="user.password_reset",
        entity_type="user",
        entity_key=user.username,
        old={},
        new={"must_change_password": True, "revoked_tokens": revoked},
    )
    return user


def _set_password(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    password: str,
    *,
    now: dt.datetime,
    must_change: bool,
) -> int:
    user.password_hash = hasher.hash(password)
    user.password_changed_at = now  # ends the page sessions stamped with the old time
    user.must_change_password = must_change
    live = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in live:
        token.revoked_at = now
    session.flush()
    return len(live)


def verify_password(hasher: PasswordHasher, user: User, password: str) -> bool:
    """Whether this is the user's password (for re-entry at a signature)."""
    return _password_matches(hasher, user, password)


def issue_token(
    session: Session, user: User, *, ttl: dt.timedelta, label: str = ""
) -> tuple[str, ApiToken]:
    """A new bearer token for the user: the secret (shown once) and its stored record."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        token_hash=_token_digest(secret),
        label=label,
        expires_at=utcnow() + ttl,
    )
    session.add(token)
    session.flush()
    return secret, token


def resolve_token(session: Session, secret: str, *, now: dt.datetime | None = None) -> ApiToken:
    """The live token behind a bearer secret, or `AuthenticationError`."""
    now = now or utcnow()
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_digest(secret)))
    if token is None or not token.user.active:
        raise AuthenticationError("The token is not valid.")
    if token.revoked_at is not None:
        raise AuthenticationError("The token was revoked.")
    if token.expires_at <= now:
        raise AuthenticationError("The token has expired.")
    return token


def revoke_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; revoking twice is harmless."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFoundError("token", token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    session.flush()
    return token


def _password_matches(hasher: PasswordHasher, user: User | None, password: str) -> bool:
    stored = user.password_hash if user is not None and user.active else None
    try:
        if stored is None:
            hasher.verify(
                _decoy_hash(hasher.time_cost, hasher.memory_cost, hasher.parallelism), password
            )
            return False
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _decoy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    decoy = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
    return decoy.hash(_UNKNOWN_USER_PASSWORD)


def _check_password(password: str, username: str, *, field: str = "password") -> None:
    problem = password_problem(password, username=username)
    if problem is not None:
        raise InvalidValueError(field, problem)


def _token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def supplied_wards(session: Session, pharmacy_site_id: int) -> list[Site]:
    """The wards a hospital pharmacy supplies, by code: where it may send vials and kits."""
    return list(
        session.scalars(
            select(Site).where(Site.supplied_by_id == pharmacy_site_id).order_by(Site.code)
        )
    )
