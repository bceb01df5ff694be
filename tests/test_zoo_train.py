"""Zoo training: the mixed-precision step keeps float32 weights and learns like the float32 one."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import synthetic_eval_questions, tiny_adapter
from vrp.zoo.tokenizer import questions_tokenizer
from vrp.zoo.train import TrainConfig, autocast_context, train_adapter

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return synthetic_eval_questions(seed=2, n_eval_images=4)


def test_autocast_setting_is_checked_and_maps_to_a_context():
    assert TrainConfig().autocast == "bfloat16"
    with pytest.raises(ValueError, match="train.autocast must be one of"):
        TrainConfig(autocast="float16")
    with autocast_context(TrainConfig(autocast="bfloat16"), torch.device("cpu")):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_context(TrainConfig(autocast="none"), torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


def test_mixed_precision_training_keeps_float32_weights_and_learns(train):
    tokenizer = questions_tokenizer(train)
    losses = {}
    for autocast in ("bfloat16", "none"):
        adapter = tiny_adapter("llava", tokenizer, num_hidden_layers=2, seed=0)
        config = TrainConfig(steps=40, batch_size=16, warmup_steps=5, autocast=autocast)
        history = train_adapter(adapter, train, config, seed=0, progress=False)
        assert all(p.dtype == torch.float32 for p in adapter.model.parameters())
        losses[autocast] = history["losses"]
        assert history["config"]["autocast"] == autocast
    for autocast, curve in losses.items():
        start, end = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
        assert end < 0.6 * start, (autocast, start, end)  # both learn the small table
    # bfloat16 products round differently: the curves part, but stay close
    assert losses["bfloat16"] != losses["none"]
    assert abs(sum(losses["bfloat16"][-5:]) - sum(losses["none"][-5:])) / 5 < 0.5
