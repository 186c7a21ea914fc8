"""Property tests replay fixed examples in CI and explore on a developer's machine."""

from __future__ import annotations

import os

from hypothesis import settings


def test_ci_replays_derandomized_examples_and_a_developer_explores() -> None:
    in_ci = os.environ.get("CI") == "true" and not os.environ.get("HYPOTHESIS_PROFILE")
    if in_ci:
        assert (settings.default.derandomize, settings.default.database) == (True, None)
    elif os.environ.get("HYPOTHESIS_PROFILE") is None:
        assert settings.default.derandomize is False
