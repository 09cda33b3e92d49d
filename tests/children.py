"""Child Python processes for tests: they import the seqcore this process
imported (installed, or the source tree with its built extension), never the
source tree by accident of their working directory."""

import os
from pathlib import Path

import seqcore

PACKAGE_PARENT = str(Path(seqcore.__file__).resolve().parents[1])
# A working directory with no seqcore/ in it: `python -c` and `-m` put the
# working directory first on sys.path.
CHILD_CWD = os.path.abspath(os.sep)


def child_env(base=None, **extra) -> dict:
    """The environment for a child: `base` (default os.environ) plus `extra`,
    with PYTHONPATH at the package this process imported."""
    env = dict(os.environ if base is None else base, **extra)
    env["PYTHONPATH"] = PACKAGE_PARENT
    return env
