"""Every interval column of the toy run's result tables names its method; default: by image."""

import math

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

TABLES = [
    "table1.csv",
    "table3.csv",
    "table4.csv",
    "table5.csv",
    "table6.csv",
    "table7.csv",
    "table8.csv",
    "table_masking.csv",
    "selfconsistency/k~5.csv",
    "selfconsistency/k~10.csv",
]


def _headline_prefixes(columns) -> list[str]:
    """'' for lo/hi, 'drop_' for drop_lo/drop_hi, ...: each headline interval (not *_lo_image)."""
    return [
        c[: -len("lo")] for c in columns if c == "lo" or (c.endswith("_lo") and c != "fisher_lo")
    ]


@pytest.mark.parametrize("name", TABLES)
def test_every_interval_names_its_method_and_the_default_is_clustered(demo_workdir, name):
    table = pd.read_csv(
        demo_workdir / "results" / name, keep_default_na=False, na_values=["", "nan", "NaN"]
    )
    prefixes = _headline_prefixes(table.columns)
    assert prefixes, f"{name} has no interval columns"
    for prefix in prefixes:
        method = f"{prefix}ci_method"
        assert method in table.columns, f"{name}: {prefix}lo has no {method} column"
        for column in ("lo_image", "hi_image", "lo_question", "hi_question"):
            assert f"{prefix}{column}" in table.columns, f"{name}: {prefix}{column} missing"
        defined = table[f"{prefix}lo"].map(lambda v: isinstance(v, float) and not math.isnan(v))
        methods = table.loc[defined, method].astype(str)
        assert methods.str.startswith("cluster bootstrap by image").all(), (
            name,
            prefix,
            set(methods),
        )
        # the headline interval is the image-clustered one (stats.interval_unit defaults to image)
        pd.testing.assert_series_equal(
            table.loc[defined, f"{prefix}lo"],
            table.loc[defined, f"{prefix}lo_image"],
            check_names=False,
        )
    if "paired_p" in table.columns:
        assert table["paired_test"].str.startswith("clustered McNemar by image").all()
