"""Fixtures and settings shared by the tests."""

import os
import shutil
import tempfile

import pytest

import seqcore
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Each test runs in a fresh, empty working directory of its own, so that
    no test depends on where pytest was started or on what an earlier command
    left there (the README's `seqcore train` leaves ./seqcore-run, the CLI's
    default --out). A hook, not an autouse fixture: hypothesis refuses
    function-scoped fixtures around its tests."""
    before = os.getcwd()
    here = tempfile.mkdtemp(prefix="seqcore-test-cwd-")
    os.chdir(here)
    try:
        yield
    finally:
        os.chdir(before)
        shutil.rmtree(here, ignore_errors=True)  # a child process may still be writing there


@pytest.fixture(params=list(_core.isas()))
def isa(request):
    """Switches seqcore to each instruction set this CPU has for the test, then back."""
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Runs the test with seqcore at 1 and at 2 threads, then restores the count."""
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(request.param)
    yield request.param
    seqcore.set_num_threads(before)
