"""Robust multilateration: exact on noiseless ranges, unbiased by an NLOS anchor, consistent covariance."""
from __future__ import annotations

import numpy as np

from flm_core.estimation.multilateration import multilaterate

ANCHORS = np.array([[0.0, 0.0, 2.5], [12.0, 0.0, 2.2], [12.0, 9.0, 2.6], [0.0, 9.0, 2.4], [6.0, 4.5, 2.8],
                    [6.0, -0.5, 2.0]])
TAG_Z = 0.8


def _ranges(p: np.ndarray, anchors: np.ndarray = ANCHORS) -> np.ndarray:
    return np.linalg.norm(anchors - np.array([p[0], p[1], TAG_Z]), axis=1)


def test_exact_on_noiseless_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform([0.5, 0.5], [11.5, 8.5])
        for anc in (ANCHORS, ANCHORS[:3], ANCHORS[:4]):
            res = multilaterate(anc, _ranges(p, anc), sigma=0.05, fixed_z=TAG_Z)
            assert res.ok
            np.testing.assert_allclose(res.position, p, atol=1e-6)
            assert res.inliers.all()
    # 3D solve with a non-planar anchor set
    anc3 = ANCHORS.copy()
    anc3[4, 2] = 0.3
    p3 = np.array([3.0, 4.0, 1.2])
    res = multilaterate(anc3, np.linalg.norm(anc3 - p3, axis=1), sigma=0.05)
    np.testing.assert_allclose(res.position, p3, atol=1e-6)


def test_robust_to_one_nlos_anchor() -> None:
    rng = np.random.default_rng(1)
    errs_robust, errs_ls = [], []
    for k in range(30):
        p = rng.uniform([0.5, 0.5], [11.5, 8.5])
        r = _ranges(p) + rng.normal(0, 0.05, len(ANCHORS))
        bad = k % len(ANCHORS)
        r[bad] += rng.uniform(0.8, 2.5)           # NLOS: a positive bias on one anchor
        res = multilaterate(ANCHORS, r, sigma=0.05, fixed_z=TAG_Z)
        assert res.ok
        assert not res.inliers[bad]
        errs_robust.append(np.linalg.norm(res.position - p))
        # the plain least-squares answer for comparison
        from flm_core.estimation.multilateration import MultilaterationConfig
        ls = multilaterate(ANCHORS, r, sigma=0.05, fixed_z=TAG_Z,
                           config=MultilaterationConfig(inlier_threshold=1e9, huber=1e9))
        errs_ls.append(np.linalg.norm(ls.position - p))
    assert max(errs_robust) < 0.2
    assert np.mean(errs_robust) < 0.3 * np.mean(errs_ls)


def test_covariance_is_consistent_and_invalid_ranges_ignored() -> None:
    rng = np.random.default_rng(2)
    p = np.array([4.0, 3.0])
    nees = []
    for _ in range(300):
        r = _ranges(p) + rng.normal(0, 0.1, len(ANCHORS))
        res = multilaterate(ANCHORS, r, sigma=0.1, fixed_z=TAG_Z)
        e = res.position - p
        nees.append(e @ np.linalg.solve(res.cov, e))
    assert 1.5 < np.mean(nees) < 2.5           # 2 dof (covariance inflated only when residuals say so)
    r = _ranges(p)
    r[[1, 4]] = [np.nan, np.inf]
    res = multilaterate(ANCHORS, r, sigma=0.1, fixed_z=TAG_Z)
    assert res.ok and not res.inliers[1] and not res.inliers[4]
    np.testing.assert_allclose(res.position, p, atol=1e-6)
    assert not multilaterate(ANCHORS[:2], _ranges(p, ANCHORS[:2]), fixed_z=TAG_Z).ok


def test_collinear_anchors_terminate() -> None:
    """Regression: anchors on one line (a corridor ceiling) once made the drop/re-admit loop oscillate forever."""
    import time

    anc = np.array([[6.3516, 5.5841, 3.1923], [19.0548, 5.5841, 3.1923], [31.7580, 5.5841, 3.1923],
                    [44.4612, 5.5841, 3.1923], [57.1644, 5.5841, 3.1923]])
    r = np.array([17.354865260939043, 4.93319781512723, 8.593278703131492, 21.057277623854365, 33.647317632458886])
    t0 = time.perf_counter()
    res = multilaterate(anc, r, sigma=0.1, fixed_z=0.8)
    assert time.perf_counter() - t0 < 1.0
    assert np.all(np.isfinite(res.position)) and res.iterations < 1000
