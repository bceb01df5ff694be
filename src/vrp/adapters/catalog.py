"""Facts about the family adapters read from their source, without importing them.

Importing an adapter imports torch and transformers (seconds per job); the workflow's start-up
check (:mod:`vrp.config`) and the figures (:mod:`vrp.analysis.plotting`) need only literals the
adapter modules spell out: the families, each family's ``tiny_defaults``, its legend label and
colour. Each adapter lives in ``<family>.py``; tests/test_layout.py and tests/test_faults.py check
that what is read here equals the imported classes' attributes.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ADAPTERS_DIR = Path(__file__).resolve().parent


@functools.cache
def adapter_families() -> frozenset[str]:
    """The family names the adapter modules declare (``family`` class attributes), read from their
    source without importing them (torch and transformers take seconds to import).

    Each adapter lives in ``<family>.py``; tests/test_layout.py checks that these are exactly the
    registry's families (``vrp.adapters.FAMILIES``), so the adapters stay the only list.
    """
    found = set()
    for path in sorted(ADAPTERS_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.AnnAssign)
                        and getattr(item.target, "id", None) == "family"
                        and isinstance(item.value, ast.Constant)
                    ):
                        found.add(item.value.value)
    return frozenset(found)


@functools.cache
def tiny_defaults(family: str) -> dict:
    """The ``tiny_defaults`` of a family's adapter, read from its source without importing it.

    Importing an adapter imports torch and transformers (seconds); the workflow's start-up check
    needs only the keys and their default types. The value is a literal dict, which may unpack
    (``**NAME``) literal dicts assigned at the top of that module or imported from another adapter
    module (the defaults the families share). tests/test_faults.py checks it equals the class
    attribute.
    """
    module = f"{family}.py"
    for node in ast.walk(_adapter_tree(module)):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "tiny_defaults":
            return _adapter_literal(node.value, module)
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "tiny_defaults" for t in node.targets
        ):
            return _adapter_literal(node.value, module)
    raise LookupError(f"no tiny_defaults literal in {ADAPTERS_DIR / module}")


@functools.cache
def family_attribute(family: str, name: str):
    """The literal class attribute ``name`` (e.g. ``display_name``, ``display_colour``) of the
    adapter class of ``family``, read from ``<family>.py`` without importing it.

    The family's class is the one whose body sets ``family = "<family>"``; an attribute it does
    not set itself is looked up in its bases (a class of the same module, or one imported from
    another adapter module), as Python would.
    """
    module = f"{family}.py"
    for node in _adapter_tree(module).body:
        if isinstance(node, ast.ClassDef) and _class_literal(node, "family", module) == family:
            value = _class_attribute(node, module, name)
            if value is _MISSING:
                raise LookupError(
                    f"{ADAPTERS_DIR / module}: class {node.name} sets no literal {name} "
                    "(nor do its bases outside base.py)"
                )
            return value
    raise LookupError(f"{ADAPTERS_DIR / module}: no adapter class sets family = {family!r}")


_MISSING = object()


def _class_literal(node: ast.ClassDef, name: str, module: str):
    """The literal bound to ``name`` in the body of class ``node`` (``_MISSING`` if unbound)."""
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and getattr(item.target, "id", None) == name:
            if item.value is not None:
                return _adapter_literal(item.value, module)
        if isinstance(item, ast.Assign) and any(
            getattr(t, "id", None) == name for t in item.targets
        ):
            return _adapter_literal(item.value, module)
    return _MISSING


def _class_attribute(node: ast.ClassDef, module: str, name: str):
    """The literal ``name`` of class ``node`` or, unset there, of its adapter bases (else ``_MISSING``)."""
    value = _class_literal(node, name, module)
    for base in node.bases:
        if value is not _MISSING:
            break
        found = _class_node(getattr(base, "id", None), module)
        if found is not None:
            value = _class_attribute(*found, name)
    return value


def _class_node(name: str | None, module: str) -> tuple[ast.ClassDef, str] | None:
    """Class ``name`` as seen from adapter ``module``: defined there, or imported from another
    family's adapter module (``base.py`` sets no family facts: None)."""
    for node in _adapter_tree(module).body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node, module
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vrp.adapters."):
            source = node.module.rsplit(".", 1)[1] + ".py"
            if source != "base.py" and any(
                (alias.asname or alias.name) == name and alias.name == name for alias in node.names
            ):
                return _class_node(name, source)
    return None


@functools.cache
def _adapter_tree(module: str) -> ast.Module:
    return ast.parse((ADAPTERS_DIR / module).read_text())


def _adapter_literal(node: ast.expr, module: str):
    """The value of a literal in adapter ``module``, with ``**NAME`` entries of a dict resolved."""
    if not isinstance(node, ast.Dict):
        return ast.literal_eval(node)
    value = {}
    for key, item in zip(node.keys, node.values):
        if key is None:
            if not isinstance(item, ast.Name):
                raise LookupError(
                    f"{ADAPTERS_DIR / module}: only **NAME may be unpacked in a tiny_defaults literal"
                )
            value.update(_adapter_name(item.id, module))
        else:
            value[ast.literal_eval(key)] = _adapter_literal(item, module)
    return value


def _adapter_name(name: str, module: str):
    """The literal bound to ``name`` at the top of adapter ``module``, or in the adapter module it
    is imported from (``from vrp.adapters.<module> import name``)."""
    for node in _adapter_tree(module).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
            return _adapter_literal(node.value, module)
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == name for t in node.targets
        ):
            return _adapter_literal(node.value, module)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vrp.adapters."):
            if any(
                (alias.asname or alias.name) == name and alias.name == name for alias in node.names
            ):
                return _adapter_name(name, node.module.rsplit(".", 1)[1] + ".py")
    raise LookupError(
        f"{ADAPTERS_DIR / module}: {name} is neither a literal there nor imported from an adapter module"
    )
