"""The distribution: one version, type stubs that match the extension, and,
given a repaired wheel, that it installs without a compiler and runs.

The cheap tests always run. The heavy ones run when SEQCORE_WHEEL names a
wheel repaired by tools/build_wheel.sh (.ci/wheel.sh sets it):
  SEQCORE_WHEEL        the repaired wheel; its sdist is looked for beside it
  SEQCORE_WHEEL_TORCH  a requirement for torch, e.g. "torch==2.13.0+cpu", to
                       run the smoke test with torch imported first
  SEQCORE_SDIST_PYTHON the interpreter that builds the sdist (default: this one)
With qemu-x86_64 on PATH, the wheel also runs on emulated older CPUs.
"""

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import seqcore
from seqcore import _core

PACKAGE = Path(seqcore.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "tools" / "smoke_wheel.py"
WHEEL = os.environ.get("SEQCORE_WHEEL")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "cpp", "ld")
# pip quiet and never asking.
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-input"]


def source_version() -> str:
    """The one version, as the build reads it: the regex on seqcore/_version.py."""
    text = (REPO / "seqcore" / "_version.py").read_text()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


# ---------------------------------------------------------------------------
# always: version and stubs


def test_version_comes_from_version_file():
    assert seqcore.__version__ == source_version() == _core.__version__


def test_version_agrees_with_installed_metadata():
    try:
        dist = importlib.metadata.distribution("seqcore")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("seqcore is imported from the source tree, not installed")
    if Path(dist.locate_file("seqcore/__init__.py")).resolve() != Path(seqcore.__file__).resolve():
        pytest.skip("the installed seqcore is not the one imported (source tree first on sys.path)")
    assert dist.version == seqcore.__version__


def test_package_ships_type_information():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def stub_functions() -> dict:
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def stub_names() -> set:
    names = set(stub_functions())
    for node in ast.parse((PACKAGE / "_core.pyi").read_text()).body:
        if isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            names.add(node.name)
    return names


def stub_methods() -> dict:
    """{(class, method): def} of the stubs' classes, their bases' methods included."""
    classes = {n.name: n for n in ast.parse((PACKAGE / "_core.pyi").read_text()).body if isinstance(n, ast.ClassDef)}
    out = {}
    for name, node in classes.items():
        for base in [classes[b.id] for b in node.bases if isinstance(b, ast.Name) and b.id in classes] + [node]:
            out.update({(name, f.name): f for f in base.body if isinstance(f, ast.FunctionDef)})
    return out


def extension_classes() -> list:
    return sorted(n for n in dir(_core) if isinstance(getattr(_core, n), type))


def extension_names() -> set:
    return {n for n in dir(_core) if not n.startswith("_") or n == "__version__"}


def parameters(fn: ast.FunctionDef) -> list:
    """[(name, default or '<required>')] of a def."""
    args = fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + fn.args.defaults
    return [(a.arg, "<required>" if d is None else ast.literal_eval(d)) for a, d in zip(args, defaults)]


def extension_signature(name: str, owner=_core) -> ast.FunctionDef:
    """pybind11's signature line of an extension function (the first line of
    its docstring, `name(a: T, b: T = 0) -> R`), parsed as a def."""
    line = getattr(owner, name).__doc__.strip().splitlines()[0]
    return ast.parse(f"def {line}: ...").body[0]


def test_stubs_declare_everything_the_extension_exports():
    assert stub_names() == extension_names()


@pytest.mark.parametrize("name", sorted(n for n in extension_names() if n != "__version__" and
                                         n not in extension_classes()))
def test_stub_signature_matches_extension(name):
    runtime, stub = extension_signature(name), stub_functions()[name]
    assert parameters(stub) == parameters(runtime)
    returns_none = [isinstance(f.returns, ast.Constant) and f.returns.value is None for f in (stub, runtime)]
    assert returns_none[0] == returns_none[1], f"{name}: one returns None, the other does not"


@pytest.mark.parametrize("cls", extension_classes())
def test_stub_methods_match_the_extensions_classes(cls):
    methods = {m for m in dir(getattr(_core, cls)) if not m.startswith("_") or m == "__init__"}
    stubs = {m: f for (c, m), f in stub_methods().items() if c == cls}
    assert set(stubs) == methods
    for name, stub in stubs.items():
        if stub.decorator_list:  # a property
            continue
        runtime = extension_signature(name, getattr(_core, cls))
        assert parameters(stub) == parameters(runtime), name


def test_signature_parser_sees_names_and_defaults():
    # The oracle of the test above: a known binding, read by hand from csrc/bindings/products.cpp.
    assert parameters(extension_signature("gemm")) == [
        ("a", "<required>"), ("b", "<required>"), ("c", "<required>"),
        ("trans_a", False), ("trans_b", False), ("alpha", 1.0), ("beta", 0.0), ("bf16", False)]


# ---------------------------------------------------------------------------
# with SEQCORE_WHEEL: the repaired wheel and its sdist

needs_wheel = pytest.mark.skipif(
    WHEEL is None, reason="set SEQCORE_WHEEL to a wheel repaired by tools/build_wheel.sh (see .ci/wheel.sh)")


def wheel_path() -> Path:
    path = Path(WHEEL).resolve()
    assert path.is_file(), f"SEQCORE_WHEEL={WHEEL}: no such file"
    return path


def sdist_path() -> Path:
    path = wheel_path().parent / f"seqcore-{source_version()}.tar.gz"
    assert path.is_file(), f"no sdist beside the wheel: {path}"
    return path


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    """Runs cmd, failing the test with its output when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def venv(path: Path, python: str = sys.executable) -> Path:
    """A fresh virtual environment at path; returns its python."""
    run([python, "-m", "venv", str(path)])
    return path / "bin" / "python"


def clean_env() -> dict:
    """This process's environment without SEQCORE_* (a forced ISA) and
    PYTHON* (a PYTHONPATH to the source tree)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SEQCORE_", "PYTHON"))}


def no_compiler_env(python: Path, bin_dir: Path) -> dict:
    """An environment whose PATH has the venv's python and nothing else: no
    compiler, and CC/CXX fail loudly should anything try to build."""
    bin_dir.mkdir()
    for name in ("python", "python3"):
        (bin_dir / name).symlink_to(python)
    env = clean_env()
    env.update(PATH=str(bin_dir), CC="/bin/false", CXX="/bin/false")
    return env


@needs_wheel
def test_wheel_is_repaired_and_complete():
    path = wheel_path()
    assert re.search(r"-cp3\d+-cp3\d+-manylinux_2_\d+_x86_64\.whl$", path.name), path.name
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        metadata = z.read(f"seqcore-{source_version()}.dist-info/METADATA").decode()
    assert any(re.fullmatch(r"seqcore\.libs/libgomp-[0-9a-f]+\.so[.0-9]*", n) for n in names), \
        "libgomp is not vendored"
    assert {"seqcore/py.typed", "seqcore/_core.pyi", "seqcore/__init__.py"} <= set(names)
    assert f"\nVersion: {source_version()}\n" in metadata
    assert "\nRequires-Python: >=3.9\n" in metadata
    assert "torch" not in "".join(re.findall(r"^Requires-Dist: .*$", metadata, re.M))


@pytest.fixture(scope="module")
def no_compiler_python(tmp_path_factory):
    """A fresh venv with the repaired wheel installed from binaries only, and
    the environment (no compiler on PATH) to run it in."""
    wheel = wheel_path()
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    if f"-{tag}-" not in wheel.name:
        pytest.skip(f"{wheel.name} is not for this Python ({tag})")
    root = tmp_path_factory.mktemp("no_compiler")
    python = venv(root / "venv")
    env = no_compiler_env(python, root / "bin")
    found = [c for c in COMPILERS if shutil.which(c, path=env["PATH"])]
    assert not found, f"compilers still on PATH: {found}"
    run([str(python), *PIP, "--only-binary=:all:", str(wheel)], env=env, cwd=root)
    return python, env


@needs_wheel
def test_wheel_installs_without_compiler_and_runs_every_isa(no_compiler_python):
    python, env = no_compiler_python
    done = run([str(python), str(SMOKE)], env=env, cwd=os.sep)
    print(done.stdout)
    for isa in _core.isas():
        assert f"SEQCORE_ISA={isa}:" in done.stdout
    assert "smoke test passed" in done.stdout


# Emulated CPUs older than this machine's: (qemu -cpu model, the ISAs seqcore
# must find there). qemu raises SIGILL on an instruction the model lacks.
OLDER_CPUS = [("Nehalem", ["scalar"]), ("Haswell", ["scalar", "avx2"])]


@needs_wheel
@pytest.mark.parametrize("cpu, isas", OLDER_CPUS)
def test_wheel_runs_on_an_older_cpu(no_compiler_python, cpu, isas):
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-x86_64 (Debian: qemu-user) is not installed")
    python, env = no_compiler_python
    # The smoke's child mode: the cells on the ISA seqcore chooses for this CPU.
    done = run([qemu, "-cpu", cpu, str(python), str(SMOKE), "--child"], env=env, cwd=os.sep)
    print(done.stdout)
    assert f"isa {isas[-1]}: " in done.stdout
    assert f"'isas': {isas}" in done.stdout
    assert "match the reference" in done.stdout


@needs_wheel
def test_wheel_runs_with_torch_imported_first(no_compiler_python):
    requirement = os.environ.get("SEQCORE_WHEEL_TORCH")
    if not requirement:
        pytest.skip('set SEQCORE_WHEEL_TORCH to a torch requirement (e.g. "torch==2.13.0+cpu")')
    python, env = no_compiler_python
    run([str(python), *PIP, "--only-binary=:all:", requirement], env=env, cwd=os.sep)
    done = run([str(python), str(SMOKE), "--torch-first"], env=env, cwd=os.sep)
    print(done.stdout)
    assert "torch imported first:" in done.stdout and "smoke test passed" in done.stdout


@needs_wheel
def test_sdist_holds_the_sources_and_no_build_output():
    with tarfile.open(sdist_path()) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    kernels = [f"csrc/isa/kernels_{isa}.cpp" for isa in ("scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16",
                                                            "amx_bf16")]
    for required in ("pyproject.toml", "CMakeLists.txt", "README.md", "csrc/bindings/module.cpp",
                     "csrc/dispatch.cpp", "seqcore/_version.py", "seqcore/_core.pyi", "seqcore/py.typed",
                     *kernels):
        assert required in names
    junk = [n for n in names if n.endswith((".so", ".o", ".pyc")) or n.startswith(("build/", "dist/", ".ci/"))]
    assert not junk


@needs_wheel
def test_sdist_alone_builds_and_installs(tmp_path):
    python = venv(tmp_path / "venv", os.environ.get("SEQCORE_SDIST_PYTHON", sys.executable))
    # The sdist, copied out of the source tree: nothing but its own files builds.
    sdist = tmp_path / sdist_path().name
    sdist.write_bytes(sdist_path().read_bytes())
    env = clean_env()
    # Its scalar kernels only (CMake's SEQCORE_ISAS): this checks the oldest
    # Python's build and install of the sdist; the wheel, built from the same
    # sdist by tools/build_wheel.sh, compiles all five (a build takes minutes).
    run([str(python), *PIP, "--config-settings=cmake.define.SEQCORE_ISAS=scalar", str(sdist)], cwd=tmp_path, env=env)
    done = run([str(python), str(SMOKE)], cwd=os.sep, env=env)
    print(done.stdout)
    assert "smoke test passed" in done.stdout
