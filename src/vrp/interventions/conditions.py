"""Which conditions an ablation sweep runs (paper §3.12, §3.13): layers, channel rankings, draws.

Torch-free, so the workflow's checkpoint (workflow/scripts/causal_ablation_layers.py) and the
tables (:mod:`vrp.analysis.causal_tables`) import it cheaply; the hooks and the re-scoring under
each condition are in :mod:`vrp.interventions.ablation` (which re-exports these names).

Conditions (:func:`build_conditions` from a plan the workflow passes):

* ``top_k``: the k channels with the highest |weight| of the L1 probe at that layer (the probe
  stage's ``neuron_ranking.parquet``, ordered by its ``rank`` column);
* ``random_k``: k channels drawn uniformly, excluding the top k, once per seed (the paper's
  "random 5" was a fixed list [100, 500, 1000, 2000, 3000]);
* ``single``: the channel of one rank alone;
* ``random_fraction``: a share of all channels (``n_masked(fraction, d)``), once per seed;
* ``bypass``: the whole MLP output zeroed at all tokens.

Layers: the paper's LLaVA layers (10, 17, 21, 27, 29, 31 of 32) are mapped to a model of depth L by
:func:`scale_layers`: round(l * (L - 1) / (D - 1)), so the last layer maps to the last layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from vrp.stats.selection import n_masked, random_channels

if TYPE_CHECKING:
    import pandas as pd

# The labels of a condition in every ablation table (one column each).
CONDITION_KEYS = ("condition", "layer", "k", "rank", "seed", "fraction", "n_channels", "channels")


# ---------------------------------------------------------------------------- layers and rankings
def scale_layers(layers: Sequence[int], num_layers: int, depth: int | None = None) -> list[int]:
    """Decoder-layer indices of ``layers`` in a model with ``num_layers`` layers.

    ``depth`` None: ``layers`` are this model's own indices (negative counts from the end).
    Otherwise they are indices in a model of ``depth`` layers (the paper's 32-layer LLaVA),
    mapped by round-half-up of l * (num_layers - 1) / (depth - 1). Order kept, duplicates dropped.
    """
    out: list[int] = []
    for layer in layers:
        if depth is None:
            if not -num_layers <= layer < num_layers:
                raise ValueError(
                    f"ablation layer {layer} does not exist in a model with {num_layers} decoder layers"
                )
            mapped = layer % num_layers
        else:
            if not 0 <= layer < depth:
                raise ValueError(
                    f"ablation layer {layer} is not a layer of the reference depth {depth} (0..{depth - 1})"
                )
            mapped = (
                0 if depth == 1 else int(math.floor(layer * (num_layers - 1) / (depth - 1) + 0.5))
            )
        if mapped not in out:
            out.append(mapped)
    return out


def layer_plan(
    num_layers: int, layers: Sequence[int], depth: int | None, k_sweep_layer: int
) -> dict:
    """Which decoder layers a model's ablation sweeps use: the k sweep's layer and the layer sweep."""
    return {
        "num_layers": int(num_layers),
        "k_sweep_layer": scale_layers([k_sweep_layer], num_layers, depth)[0],
        "sweep_layers": scale_layers(layers, num_layers, depth),
    }


def ranked_channels(ranking: pd.DataFrame, layer: int, k: int) -> list[int]:
    """The ``k`` top channels of ``layer`` in a neuron ranking (columns layer, channel, rank; low rank = top)."""
    missing = {"layer", "channel", "rank"} - set(ranking.columns)
    if missing:
        raise ValueError(
            f"the neuron ranking lacks column(s) {sorted(missing)}; it needs layer, channel, rank"
        )
    rows = ranking[ranking["layer"] == layer]
    if rows.empty:
        raise ValueError(
            f"the neuron ranking has no channels for decoder layer {layer}; it ranks layers "
            f"{sorted(ranking['layer'].unique().tolist())} (make the probe stage rank this layer "
            "or change ablation.layers)"
        )
    rows = rows.sort_values(["rank", "channel"], kind="stable")
    if len(rows) < k:
        raise ValueError(
            f"the neuron ranking has {len(rows)} channels at layer {layer}, fewer than k={k}"
        )
    return rows["channel"].astype(int).tolist()[:k]


def channel_seed(global_seed: int, seed: int, layer: int, size: int) -> int:
    """One integer seed per (config seed, random seed, layer, number of channels) for a random draw."""
    return int(
        np.random.SeedSequence([int(global_seed), int(seed), int(layer), int(size)]).generate_state(
            1
        )[0]
    )


# ---------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class AblationCondition:
    """One intervention: which channels of which layer (``channels`` None = all, the MLP bypass)."""

    condition: str
    layer: int
    channels: tuple[int, ...] | None
    k: int = -1
    rank: int = -1
    seed: int = -1
    fraction: float = float("nan")

    @property
    def n_channels(self) -> int | None:
        return None if self.channels is None else len(self.channels)

    def labels(self, hidden_size: int) -> dict:
        values = asdict(self)
        values["n_channels"] = hidden_size if self.channels is None else len(self.channels)
        values["channels"] = (
            "all" if self.channels is None else " ".join(str(c) for c in self.channels)
        )
        return values


def build_conditions(
    plan: dict, layer: int, ranking: pd.DataFrame | None, hidden_size: int, global_seed: int = 0
) -> list[AblationCondition]:
    """The conditions of one sweep job.

    ``plan["kind"]``: ``top_k`` (needs ``k``; adds ``random_k`` for each of ``random_seeds``),
    ``single`` (needs ``rank``, 1 = top), ``random_fraction`` (needs ``fraction`` and
    ``random_seeds``) or ``bypass``.
    """
    kind = plan.get("kind")
    if kind == "top_k":
        k = int(plan["k"])
        top = ranked_channels(ranking, layer, k)
        conditions = [AblationCondition("top_k", layer, tuple(top), k=k)]
        for seed in plan.get("random_seeds", []):
            drawn = random_channels(
                hidden_size, k, channel_seed(global_seed, seed, layer, k), exclude=top
            )
            conditions.append(
                AblationCondition(
                    "random_k", layer, tuple(int(c) for c in drawn), k=k, seed=int(seed)
                )
            )
        return conditions
    if kind == "single":
        rank = int(plan["rank"])
        if rank < 1:
            raise ValueError(f"single-neuron rank must be >= 1 (1 = the top channel), got {rank}")
        channel = ranked_channels(ranking, layer, rank)[-1]
        return [AblationCondition("single", layer, (channel,), k=1, rank=rank)]
    if kind == "random_fraction":
        fraction = float(plan["fraction"])
        size = n_masked(fraction, hidden_size)
        if size == 0:
            raise ValueError(f"fraction {fraction} of {hidden_size} channels rounds to 0 channels")
        return [
            AblationCondition(
                "random_fraction",
                layer,
                tuple(
                    int(c)
                    for c in random_channels(
                        hidden_size, size, channel_seed(global_seed, s, layer, size)
                    )
                ),
                k=size,
                seed=int(s),
                fraction=fraction,
            )
            for s in plan["random_seeds"]
        ]
    if kind == "bypass":
        return [AblationCondition("bypass", layer, None, k=hidden_size, fraction=1.0)]
    raise ValueError(
        f"unknown ablation plan kind {kind!r}; use top_k, single, random_fraction or bypass"
    )
