"""Which way imports run inside seqcore (the rules of ARCHITECTURE.md, "Which
way imports run"), read from the source with ``ast``: every import of every
file of the package, at its top or inside a function, resolved to the module
it names. The oracle of these tests is the list of rules below; the checker
itself is tested on a small package written for the purpose, one breach of
each rule, so that a checker that sees nothing cannot pass.

- ``reference/`` imports nothing of seqcore (the oracle shares no code with
  what it checks);
- ``nn/`` imports nothing of seqcore but ``nn/``, ``ops`` (the package
  seqcore/ops/) and ``memory.py`` (no text, training, files, nor the reference);
- ``memory.py`` (what the machine has) imports nothing of seqcore, so that
  every layer may ask it;
- ``text/`` imports nothing of seqcore but ``text/`` and ``_atomic.py`` (it
  knows nothing of models);
- ``train/``, ``generate.py`` and ``distributed.py`` import neither ``cli.py``
  nor each other against the arrows (``distributed.py`` and ``generate.py``
  nothing of ``train/``);
- nothing imports ``cli.py``; nothing but ``torch.py`` and ``onnx.py`` imports
  torch or onnx at a module's top, and nothing imports those two files (but
  ``cli.py``, inside a function: its export command); only ``ops`` (its
  modules) imports the extension ``_core``;
- no module imports another module's private (underscore) name, nor reads one
  as an attribute of a module it imported (``ops._x``). Modules private to the
  package (``_atomic``, ``_version``) are its own to share.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple

import pytest

from children import CHILD_CWD, child_env

import seqcore

PACKAGE = Path(seqcore.__file__).resolve().parent


class Import(NamedTuple):
    where: str          # "seqcore/nn/layers.py:20"
    importer: str       # "seqcore.nn.layers"
    module: str         # the module imported from ("seqcore.reference.activations", "numpy")
    names: List[str]    # the names taken from it ([] for ``import x``)
    top_level: bool     # at the module's top, not inside a function


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path) -> List[Import]:
    """Every import in the package at ``root``, relative ones resolved."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(root, path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            where = f"{path.relative_to(root.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    found.append(Import(where, name, alias.name, [], id(node) in top))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                names = [a.name for a in node.names]
                # ``from . import ops`` imports the module seqcore.ops
                submodules = [n for n in names if (root.parent / Path(*f"{module}.{n}".split("."))).with_suffix(".py")
                              .exists() or (root.parent / Path(*f"{module}.{n}".split("."))).is_dir()
                              or n == "_core"]
                for n in submodules:
                    found.append(Import(where, name, f"{module}.{n}", [], id(node) in top))
                rest = [n for n in names if n not in submodules]
                if rest or not names:
                    found.append(Import(where, name, module, rest, id(node) in top))
    return found


def _private_attributes(root: Path) -> List[str]:
    """``mod._name`` where ``mod`` is a module of the package imported by name."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(root.name)):
                modules.update(a.asname or a.name for a in node.names)
            elif isinstance(node, ast.Import):
                modules.update(a.asname or a.name for a in node.names if a.name.startswith(root.name))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in modules and node.value.id != "_core" \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def breaches(root: Path) -> List[str]:
    """Every import in the package at ``root`` against the rules of the module doc."""
    pkg = root.name
    p = lambda *names: tuple(f"{pkg}.{n}" for n in names)  # noqa: E731
    out = []
    for imp in _imports(root):
        own = _under(imp.module, pkg)
        say = f"{imp.where}: {imp.importer} imports {imp.module}" + (f" ({', '.join(imp.names)})" if imp.names else "")
        if _under(imp.importer, *p("reference")) and own and not _under(imp.module, *p("reference")):
            out.append(say + ": reference/ imports nothing of the package")
        if _under(imp.importer, *p("nn")) and own and not _under(imp.module, *p("nn", "ops", "memory")):
            out.append(say + ": nn/ imports only nn/, ops and memory.py")
        if imp.importer == f"{pkg}.memory" and own:
            out.append(say + ": memory.py imports nothing of the package")
        if _under(imp.importer, *p("text")) and own and not _under(imp.module, *p("text", "_atomic")):
            out.append(say + ": text/ imports only text/ and _atomic.py")
        if _under(imp.importer, *p("distributed", "generate")) and _under(imp.module, *p("train")):
            out.append(say + ": train/ depends on this module, not the other way")
        if _under(imp.module, *p("cli")) and imp.importer != f"{pkg}.cli":
            out.append(say + ": nothing imports cli.py")
        cli_export = imp.importer == f"{pkg}.cli" and imp.module == f"{pkg}.onnx" and not imp.top_level
        if _under(imp.module, *p("torch", "onnx")) and not _under(imp.importer, *p("torch", "onnx")) \
                and not cli_export:
            out.append(say + ": nothing imports torch.py or onnx.py")
        if _under(imp.module, "torch", "onnx") and imp.top_level and imp.importer not in p("torch", "onnx"):
            out.append(say + ": torch and onnx are imported at the top of torch.py and onnx.py only")
        if imp.module == f"{pkg}._core" and not _under(imp.importer, *p("ops")):
            out.append(say + ": only ops imports the extension")
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if own and private:
            out.append(say + f": private name {', '.join(private)} of another module")
    return out + [f"{a}: private name of another module" for a in _private_attributes(root)]


# ---------------------------------------------------------------------------
# the package


def test_seqcore_imports_run_the_documented_way():
    found = breaches(PACKAGE)
    assert found == [], "\n".join(found)


def test_the_package_is_read_whole():
    # the checker sees the package's own arrows (not an empty or wrong directory)
    seen = {(i.importer, i.module) for i in _imports(PACKAGE)}
    assert ("seqcore.ops._runtime", "seqcore._core") in seen
    assert ("seqcore.nn.layers", "seqcore.ops") in seen
    assert ("seqcore.train.trainer", "seqcore.train.data") in seen
    assert ("seqcore.cli", "seqcore.train") in seen


def test_import_seqcore_loads_neither_torch_nor_the_command_line():
    code = ("import sys, seqcore, seqcore.train, seqcore.generate, seqcore.distributed, seqcore.text; "
            "print(sorted(m for m in ('torch', 'onnx', 'seqcore.cli') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(None),
                          timeout=120, cwd=CHILD_CWD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# the checker, on a package that breaks each rule once

FAKE = {
    "__init__.py": "",
    "_core.py": "",
    "_atomic.py": "def atomic_write(): pass\n",
    "ops.py": "from . import _core\n",
    "cli.py": "from .train import trainer\ndef export():\n    from . import onnx\n",  # allowed: inside
    "onnx.py": "import onnx\n",
    "reference/__init__.py": "",
    "reference/activations.py": "import numpy as np\nfrom .. import ops\n",            # reference -> ops
    "nn/__init__.py": "",
    "nn/layers.py": "from ..reference.activations import sigmoid\nfrom .. import memory, ops\n",  # nn -> reference
    "memory.py": "import os\nfrom .nn import layers\n",                           # memory -> nn
    "nn/losses.py": "def _temperature(t): return t\n",
    "text/__init__.py": "",
    "text/vocab.py": "from .._atomic import atomic_write\nfrom ..nn import layers\n",    # text -> nn
    "train/__init__.py": "",
    "train/checkpoint.py": "def _generators(m): return {}\n",
    "train/trainer.py": "from .. import cli\n",                                     # -> cli
    "distributed.py": "def f():\n    from .train.checkpoint import _generators\n",  # -> train, private
    "generate.py": "from .nn.losses import _temperature as t\nfrom . import ops\nx = ops._hidden\n",
    "benchmark.py": "import torch\nfrom . import _core\n",                          # torch at top, _core
    "helpers.py": "from . import torch\n",                                          # -> torch.py
    "torch.py": "import torch\n",
}


@pytest.fixture
def fake_package(tmp_path: Path) -> Path:
    root = tmp_path / "fakepkg"
    for name, text in FAKE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("expected", [
    "fakepkg/reference/activations.py:2: fakepkg.reference.activations imports fakepkg.ops: reference/",
    "fakepkg/nn/layers.py:1: fakepkg.nn.layers imports fakepkg.reference.activations (sigmoid): nn/",
    "fakepkg/text/vocab.py:2: fakepkg.text.vocab imports fakepkg.nn.layers: text/",
    "fakepkg/train/trainer.py:1: fakepkg.train.trainer imports fakepkg.cli: nothing imports cli.py",
    "fakepkg/distributed.py:2: fakepkg.distributed imports fakepkg.train.checkpoint (_generators): train/",
    "fakepkg/distributed.py:2: fakepkg.distributed imports fakepkg.train.checkpoint (_generators): private",
    "fakepkg/generate.py:1: fakepkg.generate imports fakepkg.nn.losses (_temperature): private",
    "fakepkg/generate.py:3: ops._hidden: private name of another module",
    "fakepkg/benchmark.py:1: fakepkg.benchmark imports torch: torch and onnx",
    "fakepkg/benchmark.py:2: fakepkg.benchmark imports fakepkg._core: only ops imports",
    "fakepkg/helpers.py:1: fakepkg.helpers imports fakepkg.torch: nothing imports torch.py",
    "fakepkg/memory.py:2: fakepkg.memory imports fakepkg.nn.layers: memory.py imports nothing",
])
def test_the_checker_finds_each_kind_of_breach(fake_package, expected):
    assert any(b.startswith(expected) for b in breaches(fake_package)), "\n".join(breaches(fake_package))


def test_the_checker_finds_nothing_else(fake_package):
    # the allowed arrows of the fake package (ops -> _core, cli -> train, text -> _atomic,
    # torch.py -> torch, onnx.py -> onnx, nn -> ops and memory, generate -> ops, cli -> onnx.py in a
    # function) are not reported
    found = breaches(fake_package)
    assert len(found) == 12, "\n".join(found)
