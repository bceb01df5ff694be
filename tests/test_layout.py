"""The package's arrows: which module may import which, and who may name a model family."""

import ast
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vrp.benchmark.images import decode_images

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "vrp"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _python_files(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py"))


def test_only_the_zoo_imports_the_training_module():
    # the zoo's own rule (rules/zoo.smk) runs workflow/scripts/zoo_train.py; the zoo's training
    # benchmark times its steps and its unit test checks the step's precision
    allowed = {
        PACKAGE / "zoo" / "train.py",
        REPO / "workflow" / "scripts" / "zoo_train.py",
        REPO / "bench" / "zoo_training.py",
        REPO / "tests" / "test_zoo_train.py",
    }
    offenders = [
        str(p.relative_to(REPO))
        for p in _python_files("src", "workflow", "tests", "bench")
        if p not in allowed and "vrp.zoo.train" in _imported_modules(p)
    ]
    assert not offenders, f"modules outside the zoo import vrp.zoo.train: {offenders}"


def test_decode_images_returns_rgb_images_with_the_encoded_pixels():
    pixels = np.zeros((3, 4), dtype=np.uint8)
    pixels[1, 2] = 200
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    (image,) = decode_images([buffer.getvalue()])
    assert image.mode == "RGB" and image.size == (4, 3)
    assert np.asarray(image)[1, 2].tolist() == [200, 200, 200]
    assert np.asarray(image)[0, 0].tolist() == [0, 0, 0]


# Who may name a model family in code (docstrings and comments may: they explain). Each entry
# says why; everything else asks the adapter (vrp.adapters) or loops over FAMILIES.
FAMILY_NAMES_ALLOWED = {
    # the adapters are where family facts live
    "src/vrp/adapters/": "one adapter per family",
    # the paper's headline claims are stated per family (its numbers for LLaVA, PaliGemma, Qwen2-VL)
    "src/vrp/analysis/claims.py": "the paper's per-family claims",
}
FAMILY_WORDS = (
    "llava",
    "paligemma",
    "qwen2vl",
    "qwen2_vl",
    "qwen2-vl",
    "qwen25vl",
    "qwen2_5",
    "qwen2.5",
    "gemma",
    "qwen",
)


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _family_mentions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, ast.alias):
            text = node.name
        elif isinstance(node, ast.ImportFrom):
            text = node.module or ""
        else:
            continue
        if any(word in text.lower() for word in FAMILY_WORDS):
            found.append(f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}: {text[:60]!r}")
    return found


def test_no_module_outside_the_adapters_names_a_family():
    offenders = []
    for path in _python_files("src", "workflow"):
        relative = str(path.relative_to(REPO))
        if any(relative.startswith(allowed) for allowed in FAMILY_NAMES_ALLOWED):
            continue
        offenders += _family_mentions(path)
    assert not offenders, "family names outside src/vrp/adapters/:\n" + "\n".join(offenders)


def test_method_notes_are_cited_inside_the_repository():
    assert (REPO / "docs" / "method.md").is_file()
    outside = [
        str(p.relative_to(REPO))
        for p in _python_files("src", "workflow", "tests", "bench")
        if p != Path(__file__).resolve()
        and any(
            word in p.read_text() for word in ("/work/shared", "paper-method.md", "feasibility.md")
        )
    ]
    assert not outside, (
        f"modules cite method notes outside the repository (use docs/method.md): {outside}"
    )


# ------------------------------------------------------------------------------------------
# "A family is one adapter file": everything else reads the family facts off the registry
# ------------------------------------------------------------------------------------------
WORKFLOW_TEXT = [
    "Snakefile",
    "rules/*.smk",
    "workflow/schemas/*.yaml",
    "workflow/report/*.rst",
    "profiles/*/*.yaml",
    "envs/*.yaml",
]


def test_the_registry_is_the_only_list_of_families():
    import yaml

    from vrp.adapters import ADAPTERS, FAMILIES, FamilyAdapter
    from vrp.config import adapter_families

    # one adapter module per family, named after it, each registered (and nothing else is)
    modules = {p.stem for p in (PACKAGE / "adapters").glob("*.py")} - {
        "__init__",
        "base",
        "catalog",
    }
    assert modules == set(FAMILIES) == set(ADAPTERS) == set(FamilyAdapter.registry)
    for family, adapter in ADAPTERS.items():
        assert adapter.__module__ == f"vrp.adapters.{family}" and adapter.family == family
    # the config check reads the families off those modules; the schema lists none
    assert adapter_families() == frozenset(FAMILIES)
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert "enum" not in schema["$defs"]["model"]["properties"]["family"]


def test_rules_schema_and_captions_name_no_family():
    """The workflow's own files never spell a family key: adding a family leaves them unchanged."""
    import re

    from vrp.adapters import FAMILIES

    pattern = re.compile(r"\b(" + "|".join(map(re.escape, FAMILIES)) + r")\b")
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}"
        for glob in WORKFLOW_TEXT
        for path in sorted(REPO.glob(glob))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, "family keys outside the adapters:\n" + "\n".join(offenders)


def test_every_family_brings_its_own_label_and_colour():
    from vrp.adapters import ADAPTERS, FAMILIES
    from vrp.analysis.plotting import FAMILY_COLOURS, FAMILY_LABELS

    assert set(FAMILY_COLOURS) == set(FAMILY_LABELS) == set(FAMILIES)
    assert len(set(FAMILY_COLOURS.values())) == len(FAMILIES)  # told apart in every figure
    assert len(set(FAMILY_LABELS.values())) == len(FAMILIES)
    for family, adapter in ADAPTERS.items():
        assert FAMILY_LABELS[family] == adapter.display_name
        assert FAMILY_COLOURS[family] == adapter.display_colour


def test_a_family_adapter_without_its_colour_is_refused_naming_it():
    from vrp.adapters import FamilyAdapter

    before = dict(FamilyAdapter.registry)
    with pytest.raises(TypeError, match=r"display_colour"):

        class Uncoloured(FamilyAdapter):  # a new family that declares only part of its facts
            family = "uncoloured"
            display_name = "Uncoloured"

    assert FamilyAdapter.registry == before  # refused before it is registered
