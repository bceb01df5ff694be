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
        if _binds(node, "tiny_defaults"):
            return _adapter_literal(node.value, module)
    raise LookupError(f"no tiny_defaults literal in {ADAPTERS_DIR / module}")


@functools.cache
def family_attribute(family: str, name: str):
    """The literal class attribute ``name`` (e.g. ``display_name``, ``display_colour``) of the
    adapter class of ``family``, read from ``<family>.py`` without importing it.

    The family's class is the one whose body sets ``family = "<family>"``, and it must set
    ``name`` itself (a label or colour is the family's own: the figures tell families apart by it).
    """
    module = f"{family}.py"
    for node in _adapter_tree(module).body:
        if isinstance(node, ast.ClassDef) and any(
            _binds(item, "family") and ast.literal_eval(item.value) == family for item in node.body
        ):
            for item in node.body:
                if _binds(item, name):
                    return _adapter_literal(item.value, module)
            raise LookupError(f"{ADAPTERS_DIR / module}: class {node.name} sets no literal {name}")
    raise LookupError(f"{ADAPTERS_DIR / module}: no adapter class sets family = {family!r}")


def _binds(node: ast.AST, name: str) -> bool:
    """Whether statement ``node`` assigns a value to the plain name ``name``."""
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and getattr(node.target, "id", None) == name
    return isinstance(node, ast.Assign) and any(
        getattr(t, "id", None) == name for t in node.targets
    )


def _import_source(name: str, module: str) -> str | None:
    """The adapter module that adapter ``module`` imports ``name`` from, unrenamed
    (``from vrp.adapters.<source> import name``), as a file name; None if it does not."""
    for node in _adapter_tree(module).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vrp.adapters."):
            if any(alias.name == name and alias.asname in (None, name) for alias in node.names):
                return node.module.rsplit(".", 1)[1] + ".py"
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
        if _binds(node, name):
            return _adapter_literal(node.value, module)
    source = _import_source(name, module)
    if source is not None:
        return _adapter_name(name, source)
    raise LookupError(
        f"{ADAPTERS_DIR / module}: {name} is neither a literal there nor imported from an adapter module"
    )
