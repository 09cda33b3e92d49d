"""Fixtures and settings shared by the tests."""

import os

import pytest

from seqcore import _core

try:
    from hypothesis import settings
except ImportError:  # the property tests skip without hypothesis
    settings = None

if settings is not None:
    # In CI (CI=true) the property tests draw the same examples every run, so
    # that a failure there replays; elsewhere they explore new ones each run.
    settings.register_profile("ci", derandomize=True, database=None)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        settings.load_profile("ci")


@pytest.fixture(params=list(_core.isas()))
def isa(request):
    """Switches seqcore to each instruction set this CPU has for the test, then back."""
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)
