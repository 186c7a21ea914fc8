"""The password policy (NIST SP 800-63B §5.1.1.2), over generated passwords."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from lots.passwords import MAX_LENGTH, MIN_LENGTH, common_passwords, password_problem

COMMON = sorted(common_passwords())
DECORATION = st.text(alphabet=string.digits + "!@#$%^&*._-", max_size=6)


def test_the_shipped_list_is_the_breach_corpus_not_a_stub():
    assert len(COMMON) == 30_000
    assert {"password", "123456", "qwerty", "iloveyou", "dragon"} <= common_passwords()


@given(word=st.sampled_from(COMMON), before=DECORATION, after=DECORATION, upper=st.booleans())
def test_a_common_password_is_refused_however_it_is_padded_or_cased(word, before, after, upper):
    password = before + (word.upper() if upper else word) + after
    problem = password_problem(password.ljust(MIN_LENGTH, "1"))
    assert problem is not None


@given(st.text(min_size=0, max_size=MIN_LENGTH - 1))
def test_a_short_password_is_refused(password):
    assert password_problem(password) == f"A password needs at least {MIN_LENGTH} characters."


@given(st.text(min_size=MAX_LENGTH + 1, max_size=MAX_LENGTH + 40))
def test_an_overlong_password_is_refused(password):
    assert "at most" in (password_problem(password) or "")


@given(
    words=st.lists(
        st.text(alphabet=string.ascii_lowercase, min_size=5, max_size=9), min_size=3, max_size=5
    ).filter(lambda words: not any(word in common_passwords() for word in words)),
    separator=st.sampled_from("-_ ."),
)
def test_a_passphrase_of_uncommon_words_is_accepted(words, separator):
    passphrase = separator.join(words)
    problem = password_problem(passphrase, username="pharmacist")
    assert problem is None or "consecutive keys" in problem


@given(username=st.text(alphabet=string.ascii_lowercase, min_size=4, max_size=12), pad=DECORATION)
def test_the_username_decorated_is_refused(username, pad):
    password = (username + pad).ljust(MIN_LENGTH, "9")
    assert password_problem(password, username=username) is not None


@given(char=st.characters(exclude_categories=("Cs",)), length=st.integers(MIN_LENGTH, 40))
def test_one_repeated_character_is_refused(char, length):
    assert password_problem(char * length) is not None
