"""Every test sees an empty user cache folder, as CI does: a calibration or serving-overhead file that
`plan calibrate` left on a developer's machine must not change what a test computes (a host plan's ratios did)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _no_user_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    patch.undo()
