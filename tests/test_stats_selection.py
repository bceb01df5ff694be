"""Tests for vrp.stats.selection (mask counts, patch choice, random channels)."""

import numpy as np
import pytest

from vrp.stats.selection import n_masked, random_channels, select_patches

# floor(p * n + 0.5) by hand for the 8x8, 16x16 and 24x24 grids.
EXPECTED = {
    64: {0.2: 13, 0.25: 16, 0.3: 19, 0.35: 22, 0.4: 26},  # 12.8, 16, 19.2, 22.4, 25.6
    256: {0.2: 51, 0.25: 64, 0.3: 77, 0.35: 90, 0.4: 102},  # 51.2, 64, 76.8, 89.6, 102.4
    576: {0.2: 115, 0.25: 144, 0.3: 173, 0.35: 202, 0.4: 230},  # 115.2, 144, 172.8, 201.6, 230.4
}


@pytest.mark.parametrize("n", sorted(EXPECTED))
@pytest.mark.parametrize("p", [0.2, 0.25, 0.3, 0.35, 0.4])
def test_counts_exact_for_grids_and_all_modes(n, p):
    assert n_masked(p, n) == EXPECTED[n][p]
    scores = np.random.default_rng(n).random(n)
    for mode in ("high", "low", "random"):
        chosen = select_patches(scores, p, mode, rng=np.random.default_rng(0))
        assert len(chosen) == EXPECTED[n][p] == len(np.unique(chosen))


def test_rounding_is_half_up_not_bankers():
    assert n_masked(0.25, 10) == 3  # 2.5 -> 3 (Python round gives 2)
    assert n_masked(0.35, 90) == 32  # exact 31.5; float product 31.499999999999996
    assert n_masked(0.5, 1) == 1 and n_masked(0.0, 9) == 0 and n_masked(1.0, 9) == 9
    with pytest.raises(ValueError, match="lie in"):
        n_masked(1.2, 10)


def test_high_low_with_ties_by_index():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.1, 0.3, 0.5, 0.0, 0.1, 0.2])
    assert select_patches(scores, 0.3, "high").tolist() == [
        1,
        2,
        3,
    ]  # 0.9, 0.9, then 0.5 at index 2
    assert select_patches(scores, 0.3, "low").tolist() == [0, 4, 7]  # 0.0, then 0.1 at 0 and 4
    assert (
        select_patches(scores, 0.3, "random", rng=5).tolist()
        == select_patches(scores, 0.3, "random", rng=np.random.default_rng(5)).tolist()
    )
    with pytest.raises(ValueError, match="rng"):
        select_patches(scores, 0.3, "random")


def test_random_channels_seeded_and_excluding():
    first = random_channels(4096, 5, seed=1)
    assert first.tolist() == random_channels(4096, 5, seed=1).tolist()
    assert len(np.unique(first)) == 5 and np.all(np.diff(first) > 0)
    picked = random_channels(10, 7, seed=0, exclude=[1, 2, 3])
    assert picked.tolist() == [0, 4, 5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="cannot draw"):
        random_channels(10, 8, seed=0, exclude=[1, 2, 3])
