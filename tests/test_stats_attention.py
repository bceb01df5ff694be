"""Known-answer tests for vrp.stats.attention (H_s, C_k, concentration, ΔH_s)."""

import math

import numpy as np
import pytest

from vrp.stats import attention as A


def blobs(shape, corners, size=2, value=1.0):
    """A zero map with square blobs of side ``size`` at the given top-left corners."""
    grid = np.zeros(shape)
    for r, c in corners:
        grid[r : r + size, c : c + size] = value
    return grid


# ----------------------------------------------------------------------------- H_s
@pytest.mark.parametrize("side", [8, 16, 24])
def test_entropy_uniform_is_log_s(side):
    uniform = np.ones((side, side))
    n = side * side
    # delta = 1e-9 shifts the value by about n * (1/n) * (1e-9 * n) = 1e-9 * n.
    assert A.spatial_entropy(uniform) == pytest.approx(math.log(n), abs=1e-6)
    assert A.spatial_entropy(uniform, normalized=True) == pytest.approx(1.0, abs=1e-6)


def test_entropy_one_hot_is_zero_and_scale_free():
    one_hot = np.zeros((24, 24))
    one_hot[3, 7] = 5.0  # un-normalised input is L1-normalised first
    assert A.spatial_entropy(one_hot) == pytest.approx(0.0, abs=1e-8)
    two = np.zeros((4, 4))
    two[0, 0] = two[3, 3] = 7.0
    assert A.spatial_entropy(two) == pytest.approx(math.log(2), abs=1e-8)
    assert A.spatial_entropy(two, normalized=True) == pytest.approx(
        math.log(2) / math.log(16), abs=1e-8
    )


def test_entropy_batches_keep_leading_shape():
    rng = np.random.default_rng(0)
    maps = rng.random((5, 3, 6, 6))
    out = A.spatial_entropy(maps)
    assert out.shape == (5, 3)
    assert out[2, 1] == pytest.approx(A.spatial_entropy(maps[2, 1]))


def test_bad_maps_raise_clear_errors():
    with pytest.raises(ValueError, match="negative"):
        A.spatial_entropy(-np.ones((3, 3)))
    with pytest.raises(ValueError, match="sums to zero"):
        A.spatial_entropy(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="last two axes"):
        A.spatial_entropy(np.ones(9))


# ----------------------------------------------------------------------------- C_k
@pytest.mark.parametrize(
    "corners,expected",
    [
        ([(1, 1)], 0),
        ([(1, 1), (1, 8)], 1),
        ([(1, 1), (1, 8), (8, 4)], 2),
    ],
)
def test_components_counts_separated_blobs(corners, expected):
    grid = blobs((12, 12), corners)
    assert A.cluster_count_components(grid) == expected
    assert A.cluster_count_components(grid, connectivity=4) == expected


def test_components_unequal_blobs_over_a_diffuse_background():
    # Three blobs holding 12%, 10% and 8% of the mass (30% together) over a flat background
    # holding 70%: the top-30% mass is exactly the three blobs -> 3 components -> C_k = 2.
    grid = (
        blobs((12, 12), [(1, 1)], value=0.03)
        + blobs((12, 12), [(1, 8)], value=0.025)
        + blobs((12, 12), [(8, 4)], value=0.02)
    )
    grid[grid == 0] = 0.70 / 132
    assert grid.sum() == pytest.approx(1.0)
    assert A.cluster_count_components(grid) == 2
    assert A.cluster_count_components(grid, mass=0.12) == 0  # the strongest blob alone


def test_components_uses_top_mass_not_top_patches():
    # Blob A holds 80% of the mass, blob B 20%: the top-30% mass lies inside A only.
    grid = blobs((12, 12), [(1, 1)], value=0.2) + blobs((12, 12), [(8, 8)], value=0.05)
    assert A.cluster_count_components(grid) == 0
    # At 90% of the mass both blobs are needed.
    assert A.cluster_count_components(grid, mass=0.9) == 1
    # DBSCAN on the top decile sees both blobs (8 patches, 90th percentile = 0.05).
    assert (
        A.cluster_count_dbscan(
            blobs((8, 8), [(0, 0)], value=0.2) + blobs((8, 8), [(5, 5)], value=0.05)
        )
        == 2
    )


def test_components_single_peak_holds_the_mass():
    grid = np.full((10, 10), 0.5 / 99)
    grid[0, 0] = 0.5  # one patch holds 50% >= 30%, so only it is kept
    assert A.cluster_count_components(grid) == 0


def test_connectivity_8_vs_4_on_diagonal_pair():
    grid = np.zeros((5, 5))
    grid[1, 1] = grid[2, 2] = 1.0
    assert A.cluster_count_components(grid, connectivity=8) == 0
    assert A.cluster_count_components(grid, connectivity=4) == 1
    with pytest.raises(ValueError, match="connectivity"):
        A.cluster_count_components(grid, connectivity=6)


def test_uniform_map_keeps_every_tied_patch():
    assert A.cluster_count_components(np.ones((24, 24))) == 0


@pytest.mark.parametrize(
    "size,corners,expected",
    [
        (3, [(1, 1)], 1),
        (2, [(0, 0), (0, 5)], 2),
        (2, [(0, 0), (0, 5), (5, 2)], 3),
    ],
)
def test_dbscan_counts_blobs(size, corners, expected):
    # 8x8 grid: the 90th percentile sits at sorted index 56.7 of 63, so with >= 8 blob patches
    # the threshold is the blob value and exactly the blob patches pass.
    grid = blobs((8, 8), corners, size=size)
    assert A.cluster_count_dbscan(grid) == expected


def test_dbscan_too_few_points_is_zero():
    grid = np.zeros((10, 10))
    grid[0, 0], grid[9, 9] = 1.0, 1.0
    grid += 1e-3 * np.arange(100).reshape(10, 10)  # untied values
    # Only the largest value is >= the 99th percentile: 1 point < min_samples = 3.
    assert A.cluster_count_dbscan(grid, quantile=0.99) == 0


def test_cluster_count_batch_matches_single_maps():
    rng = np.random.default_rng(1)
    maps = rng.random((6, 2, 9, 9)) ** 6
    batch = A.cluster_count(maps)
    assert batch.shape == (6, 2)
    for i in range(6):
        for j in range(2):
            assert batch[i, j] == A.cluster_count_components(maps[i, j])
    dbscan = A.cluster_count(maps[:, 0], method="dbscan", eps=1.5)
    assert dbscan.tolist() == [A.cluster_count_dbscan(m) for m in maps[:, 0]]
    with pytest.raises(ValueError, match="method"):
        A.cluster_count(maps, method="kmeans")


# ----------------------------------------------------------------------------- concentration
def test_concentration_known_values():
    uniform = np.ones((10, 10))
    one_hot = np.zeros((10, 10))
    one_hot[4, 4] = 1.0
    assert A.top_mass(uniform) == pytest.approx(0.10)
    assert A.top_mass(one_hot) == pytest.approx(1.0)
    assert A.gini(uniform) == pytest.approx(0.0, abs=1e-12)
    assert A.gini(one_hot) == pytest.approx(99 / 100)
    assert A.max_mass(uniform) == pytest.approx(0.01)
    assert A.centroid_spread(one_hot) == pytest.approx(0.0)
    pair = np.zeros((3, 3))
    pair[0, 0] = pair[0, 2] = 1.0  # centroid (0, 1): each point at squared distance 1
    assert A.centroid_spread(pair) == pytest.approx(1.0)
    # Gini of (0, 0, 1, 1) by hand: sum (2i-5) x_i / (4 * 2) = (1 + 3) / 8 = 0.5
    assert A.gini(np.array([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(0.5)


def test_attention_features_has_the_11_documented_columns():
    rng = np.random.default_rng(2)
    maps = rng.random((4, 8, 8)) ** 4
    frame = A.attention_features(maps)
    assert list(frame.columns) == list(A.ATTENTION_FEATURES)
    assert frame.shape == (4, 11)
    assert frame["entropy"].to_numpy() == pytest.approx(A.spatial_entropy(maps))
    assert frame["ck_x_entropy"].to_numpy() == pytest.approx(
        frame["ck_components"] * frame["entropy"]
    )
    assert frame["entropy_sq"].to_numpy() == pytest.approx(frame["entropy"] ** 2)


def test_layer_delta_entropy():
    per_layer = np.array([[6.0, 3.5, 3.4, 4.4], [1.0, 2.0, 4.0, 8.0]])
    np.testing.assert_allclose(
        A.layer_delta_entropy(per_layer), [[-2.5, -0.1, 1.0], [1.0, 2.0, 4.0]]
    )
    with pytest.raises(ValueError, match="at least 2 layers"):
        A.layer_delta_entropy([1.0])
