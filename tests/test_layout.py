"""The package's arrows: which module may import which, and who may name a model family."""

import ast
import io
from pathlib import Path

import numpy as np
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
    # the zoo's own rule (rules/zoo.smk) runs workflow/scripts/train_tiny_model.py; the zoo's
    # training benchmark times its steps
    allowed = {PACKAGE / "zoo" / "train.py", REPO / "workflow" / "scripts" / "train_tiny_model.py",
               REPO / "bench" / "zoo_training.py"}
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
FAMILY_WORDS = ("llava", "paligemma", "qwen2vl", "qwen2_vl", "qwen2-vl", "gemma", "qwen")


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
