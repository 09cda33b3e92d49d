"""Every public name of the modules the manual's API reference documents has
a docstring of its own: each function, class, method and property. The API
pages (docs/api/*.md) are generated from these docstrings, so a name without
one would show as an empty entry.

Public: the names of a module's ``__all__`` where it has one, else every
name not starting with "_" that the module defines itself, or, for a
package, one of its own submodules (not one it imported from elsewhere); in a public class, every method, property and nested class not
starting with "_" that it has, its own or inherited from a class of
seqcore's (the API pages show inherited members too). The test lists what
lacks a docstring, and there should be none."""

import importlib
import inspect

import pytest

# module -> its name in the manual (docs/api/)
MODULES = ["seqcore", "seqcore.ops", "seqcore.nn", "seqcore.train", "seqcore.train.schedules", "seqcore.text",
           "seqcore.generate", "seqcore.torch", "seqcore.onnx", "seqcore.distributed", "seqcore.gradient_check",
           "seqcore.reference"]
NEEDS = {"seqcore.torch": "torch", "seqcore.onnx": "onnx"}


def public_names(module):
    """(name, object) of the module's public functions and classes."""
    names = getattr(module, "__all__", None)
    if names is None:  # defined in the module, or (a package) in one of its own submodules
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and (getattr(v, "__module__", None) or "").split(".")[:len(module.__name__.split("."))]
                 == module.__name__.split(".")]
    out = []
    for n in names:
        v = getattr(module, n)
        if inspect.isfunction(v) or inspect.isclass(v):
            out.append((n, v))
    return out


def own_doc(obj) -> bool:
    doc = obj.__doc__  # a property's: its own doc, else its getter's
    return bool(doc and doc.strip())


def members_without_docstring(cls):
    """Public methods and properties of ``cls`` (its own, and those it inherits
    from seqcore's classes) without a docstring."""
    missing, seen = [], set()
    for klass in cls.__mro__:
        if klass is not cls and not klass.__module__.startswith("seqcore"):
            continue
        for n, v in vars(klass).items():
            if n.startswith("_") or n in seen:
                continue
            seen.add(n)
            if isinstance(v, (staticmethod, classmethod)):
                v = v.__func__
            if (inspect.isfunction(v) or isinstance(v, property) or inspect.isclass(v)) and not own_doc(v):
                missing.append(n)
    return missing


def undocumented(module_name):
    module = importlib.import_module(module_name)
    missing = [] if own_doc(module) else [module_name]
    for n, v in public_names(module):
        if not own_doc(v):
            missing.append(f"{module_name}.{n}")
        if inspect.isclass(v) and v.__module__.startswith("seqcore"):
            missing += [f"{module_name}.{n}.{m}" for m in members_without_docstring(v)]
    return missing


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name):
    if module_name in NEEDS:
        pytest.importorskip(NEEDS[module_name])
    assert undocumented(module_name) == []


def test_a_packages_names_from_its_own_submodules_are_public():
    import types
    package = types.ModuleType("seqcore.example")

    def own():
        """Documented."""

    def from_submodule():
        pass

    own.__module__, from_submodule.__module__ = "seqcore.example", "seqcore.example.part"
    package.own, package.from_submodule, package.inspect = own, from_submodule, inspect.getdoc
    assert [n for n, _ in public_names(package)] == ["own", "from_submodule"]


def test_the_check_sees_a_missing_docstring():
    class Base:
        """A base class."""

        def inherited(self):
            pass

    class Documented(Base):
        """A class."""

        def method(self):
            pass

        @property
        def size(self):
            """A property."""
            return 1

    Base.__module__ = Documented.__module__ = "seqcore.example"
    assert members_without_docstring(Documented) == ["method", "inherited"]
    assert own_doc(Documented.size) and not own_doc(Documented.method)
