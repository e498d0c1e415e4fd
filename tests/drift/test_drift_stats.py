"""Two-sample tests: known values, calibration under the null, power under a shift, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from llmpulse.processor.drift.stats import (
    chi2_sf,
    chi_square_homogeneity,
    ks_two_sample,
    mmd_permutation_test,
)


@pytest.mark.parametrize(
    ("x", "dof", "expected"),
    [
        (3.841458820694124, 1, 0.05),
        (11.070497693516351, 5, 0.05),
        (6.6348966010212145, 1, 0.01),
        (2.0, 4, 0.7357588823),
    ],
)
def test_chi2_sf_matches_tables(x: float, dof: int, expected: float) -> None:
    assert chi2_sf(x, dof) == pytest.approx(expected, rel=1e-8)


def test_chi_square_homogeneity() -> None:
    same = chi_square_homogeneity(["stop"] * 90 + ["length"] * 10, ["stop"] * 90 + ["length"] * 10)
    assert same.score == 0.0 and same.p_value == pytest.approx(1.0)
    shifted = chi_square_homogeneity(["stop"] * 90 + ["length"] * 10, ["stop"] * 60 + ["length"] * 40)
    # 2x2 table [[90, 10], [60, 40]]: chi-square 24.0, Cramér's V sqrt(24 / 200)
    assert shifted.score == pytest.approx(np.sqrt(24.0 / 200))
    assert shifted.p_value == pytest.approx(chi2_sf(24.0, 1))
    assert chi_square_homogeneity(["stop"] * 5, ["stop"] * 5).p_value == 1.0


def test_ks_two_sample() -> None:
    rng = np.random.default_rng(0)
    same = ks_two_sample(rng.normal(size=300), rng.normal(size=300))
    moved = ks_two_sample(rng.normal(size=300), rng.normal(0.5, size=300))
    assert same.p_value > 0.05 and moved.p_value < 1e-6
    assert ks_two_sample([1, 2, 3], [4, 5, 6]).score == 1.0


def _cloud(rng: np.random.Generator, n: int, centre: float) -> np.ndarray:
    x = rng.normal(size=(n, 16))
    x[:, 0] += centre
    return x


def test_mmd_p_values_are_calibrated_under_the_null() -> None:
    rng = np.random.default_rng(1)
    p_values = [
        mmd_permutation_test(_cloud(rng, 60, 0), _cloud(rng, 60, 0), permutations=99, rng=rng).p_value
        for _ in range(200)
    ]
    # A valid permutation p-value is uniform: about 5% below 0.05 (binomial sd 1.5%).
    assert 0.01 <= np.mean(np.asarray(p_values) <= 0.05) <= 0.10


def test_mmd_detects_a_shift_and_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    ref, cur = _cloud(rng, 100, 0), _cloud(rng, 100, 1.0)
    a = mmd_permutation_test(ref, cur, permutations=199, rng=np.random.default_rng(5))
    b = mmd_permutation_test(ref, cur, permutations=199, rng=np.random.default_rng(5))
    assert a == b
    assert a.p_value == pytest.approx(1 / 200) and a.score > 0
    with pytest.raises(ValueError, match="at least 2 samples on each side"):
        mmd_permutation_test(ref[:1], cur, rng=rng)
