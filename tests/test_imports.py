"""What a workflow job's imports cost: figure, table and stats jobs import neither torch nor
transformers (seconds per job, and the demo runs over a hundred jobs), a model job imports one
family's adapter only. Each check runs in a fresh interpreter, so what the tests import does not count."""

import subprocess
import sys

import pytest

# what the table, figure and stats scripts of workflow/scripts import
TORCH_FREE = (
    "vrp.adapters",
    "vrp.adapters.catalog",
    "vrp.config",
    "vrp.analysis.plotting",
    "vrp.analysis.figures_attention",
    "vrp.analysis.figures_probes",
    "vrp.analysis.figures_causal",
    "vrp.analysis.figures_monitor",
    "vrp.analysis.causal_tables",
    "vrp.analysis.attention_tables",
    "vrp.analysis.probes",
    "vrp.analysis.consistency",
    "vrp.analysis.claims",
    "vrp.analysis.dynamics",
    "vrp.interventions",
    "vrp.interventions.conditions",
    "vrp.per_model",
    "vrp.metrics",
    "vrp.io",
    "vrp.shards",
    "vrp.runlog",
)


def _imported_after(code: str) -> set[str]:
    """The top-level names in sys.modules after running ``code`` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def test_table_and_figure_modules_import_neither_torch_nor_transformers():
    loaded = _imported_after("\n".join(f"import {module}" for module in TORCH_FREE))
    heavy = loaded & {"torch", "transformers"}
    assert not heavy, f"importing the table/figure modules imports {sorted(heavy)}"


def test_the_figures_read_each_familys_label_and_colour_without_its_adapter():
    loaded = _imported_after(
        "from vrp.analysis.plotting import FAMILY_COLOURS, FAMILY_LABELS\n"
        "assert FAMILY_COLOURS and FAMILY_LABELS"
    )
    assert not {m for m in loaded if m.startswith("vrp.adapters.")} - {"vrp.adapters.catalog"}


@pytest.mark.parametrize("family", ["llava", "qwen25vl"])
def test_a_model_job_imports_its_familys_adapter_only(family):
    from vrp.adapters import FAMILIES

    loaded = _imported_after(
        f"from vrp.adapters import get_adapter_class\n"
        f"assert get_adapter_class({family!r}).family == {family!r}"
    )
    # qwen25vl's adapter extends qwen2vl's: importing it imports that module too
    expected = {"qwen25vl": {"qwen25vl", "qwen2vl"}}.get(family, {family})
    families = {f for f in FAMILIES if f"vrp.adapters.{f}" in loaded}
    assert families == expected


def test_the_lazy_package_still_offers_every_name_it_lists():
    import vrp.adapters

    for name in vrp.adapters.__all__:
        assert getattr(vrp.adapters, name) is not None
    assert vrp.adapters.LlavaAdapter is vrp.adapters.get_adapter_class("llava")
    assert tuple(vrp.adapters.ADAPTERS) == vrp.adapters.FAMILIES
    with pytest.raises(AttributeError):
        vrp.adapters.NoSuchAdapter  # noqa: B018
    with pytest.raises(ValueError, match=r"unknown model family 'lava'; choose one of \['llava'"):
        vrp.adapters.get_adapter_class("lava")
    with pytest.raises(ValueError, match="unknown model family"):
        vrp.adapters.get_adapter_class(["llava"])


def test_vrp_stats_imports_a_submodule_when_one_of_its_names_is_used():
    loaded = _imported_after(
        "import vrp.stats\nfrom vrp.stats import n_masked, select_patches\n"
        "assert vrp.stats.layer_mean_ci and n_masked(0.5, 4) == 2"
    )
    assert {"vrp.stats.selection", "vrp.stats.summary"} <= loaded
    assert not loaded & {"sklearn", "statsmodels", "vrp.stats.classify", "vrp.stats.attention"}


def test_vrp_stats_exports_every_name_of_its_submodules_it_lists():
    import vrp.stats

    for name in vrp.stats.__all__:
        assert getattr(vrp.stats, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vrp.stats.nope  # noqa: B018
