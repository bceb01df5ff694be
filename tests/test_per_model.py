"""vrp.per_model: the per-model read-and-label loop of the table and figure jobs."""

import pandas as pd
import pytest

from vrp.per_model import prepend_labels, read_keyed, read_labelled


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, model in enumerate(("llava", "qwen2vl")):
        path = tmp_path / f"{model}.parquet"
        pd.DataFrame({"x": [i, i + 10]}).to_parquet(path)
        paths.append(path)
    return paths


def test_read_keyed_pairs_labels_and_files_in_order(files):
    keyed = read_keyed([["llava", "synthetic"], ["qwen2vl", "synthetic"]], files)
    assert list(keyed) == [("llava", "synthetic"), ("qwen2vl", "synthetic")]
    assert keyed[("qwen2vl", "synthetic")]["x"].tolist() == [1, 11]
    with pytest.raises(ValueError, match="2 input files"):
        read_keyed([["llava", "synthetic"]], files)


def test_read_labelled_appends_the_label_columns(files):
    table = read_labelled(
        [["llava", "llava", "syn"], ["qwen2vl", "qwen2vl", "syn"]],
        files,
        names=("model", "family", "dataset"),
    )
    assert list(table.columns) == ["x", "model", "family", "dataset"]
    assert table["model"].tolist() == ["llava", "llava", "qwen2vl", "qwen2vl"]
    assert table["x"].tolist() == [0, 10, 1, 11] and table.index.tolist() == [0, 1, 2, 3]


def test_prepend_labels_puts_them_first_in_order():
    table = prepend_labels(pd.DataFrame({"x": [1]}), model="llava", family="llava", dataset="syn")
    assert list(table.columns) == ["model", "family", "dataset", "x"]
