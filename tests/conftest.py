"""Fixtures shared by the kernel tests."""

import pytest

from seqcore import _core


@pytest.fixture(params=list(_core.isas()))
def isa(request):
    """Switches seqcore to each instruction set this CPU has for the test, then back."""
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)
