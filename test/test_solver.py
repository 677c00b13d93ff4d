"""The geometric pose solver (flm_core/estimation/solver.py) on synthetic worlds whose truth is known exactly:
noise-free recovery, plain weighted least squares against scipy, rigid-motion equivariance, covariance consistency
(NEES over 1000 noisy draws) and the unobservable directions (a corridor, a single UWB tag)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares

from flm_core.estimation.icp import PointMap
from flm_core.estimation.solver import DistanceField, PlaneBlock, RangeBlock, ScanBlock, SolverConfig, solve
from flm_core.geometry import se2_compose, wrap_angle
from flm_core.mapindex import MapIndex
from flm_core.site import Anchor, OccupancyMap, Site

RES = 0.05
TAG = np.array([0.3, -0.1, 0.9])          # m, the UWB tag in base_link (lever arm and height)
TRUE = np.array([1.3, -0.7, 0.4])         # the true pose in the world's own frame


# ---------------------------------------------------------------------------------------------- synthetic worlds
def _grid(shape: tuple[int, int], solids: list[tuple[int, int, int, int]]) -> np.ndarray:
    g = np.zeros(shape, np.int8)
    for r0, r1, c0, c1 in solids:
        g[r0:r1 + 1, c0:c1 + 1] = 100
    return g


def _faces(solids: list[tuple[int, int, int, int]], margin: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Straight faces of rectangular solids, in cell-edge coordinates (u, v), shortened by ``margin`` cells at both
    ends (the field is exactly the signed normal distance there): [(a (2,), b (2,))]."""
    out = []
    for r0, r1, c0, c1 in solids:
        u0, u1, v0, v1 = c0, c1 + 1, r0, r1 + 1
        out += [(np.array([u0 + margin, v1]), np.array([u1 - margin, v1])),     # top
                (np.array([u0 + margin, v0]), np.array([u1 - margin, v0])),     # bottom
                (np.array([u0, v0 + margin]), np.array([u0, v1 - margin])),     # left
                (np.array([u1, v0 + margin]), np.array([u1, v1 - margin]))]     # right
    return [(a, b) for a, b in out if np.all(b >= a) and np.any(b > a)]


class World:
    """An occupancy map (origin = a rigid motion of the world frame), anchors, and exact surface points."""

    def __init__(self, solids: list[tuple[int, int, int, int]], shape: tuple[int, int],
                 anchors: np.ndarray, motion: np.ndarray = np.zeros(3), base_origin: np.ndarray | None = None):
        self.motion = np.asarray(motion, float)
        base_origin = np.array([-6.0, -5.0, 0.0]) if base_origin is None else base_origin
        self.origin = se2_compose(self.motion, base_origin)
        self.map = OccupancyMap(_grid(shape, solids), RES, self.origin)
        self.anchors = np.column_stack([self.to_world(anchors[:, :2]), anchors[:, 2]])
        self.site = Site('synthetic', map=self.map,
                         anchors=tuple(Anchor(f'a{i}', a) for i, a in enumerate(self.anchors)))
        self.index = MapIndex(self.site)
        self.field = DistanceField.of(self.index, surface=1.0)     # solid cells: the surface is their faces
        self.faces = _faces(solids)

    def to_world(self, xy: np.ndarray) -> np.ndarray:
        """Points of the unmoved world frame (N, 2) -> this world's frame."""
        c, s = math.cos(self.motion[2]), math.sin(self.motion[2])
        return np.stack([self.motion[0] + c * xy[:, 0] - s * xy[:, 1], self.motion[1] + s * xy[:, 0] + c * xy[:, 1]],
                        -1)

    def pose(self, p: np.ndarray) -> np.ndarray:
        return se2_compose(self.motion, p)

    def surface(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """n points on the faces (map frame) and their unit normals (map frame)."""
        k = rng.integers(0, len(self.faces), n)
        f = rng.uniform(0, 1, n)
        a = np.stack([self.faces[i][0] for i in k])
        b = np.stack([self.faces[i][1] for i in k])
        uv = a + f[:, None] * (b - a)
        d = b - a
        nrm = np.stack([-d[:, 1], d[:, 0]], -1) / np.linalg.norm(d, axis=1, keepdims=True)
        c, s = math.cos(self.origin[2]), math.sin(self.origin[2])
        xy = np.stack([self.origin[0] + RES * (c * uv[:, 0] - s * uv[:, 1]),
                       self.origin[1] + RES * (s * uv[:, 0] + c * uv[:, 1])], -1)
        nw = np.stack([c * nrm[:, 0] - s * nrm[:, 1], s * nrm[:, 0] + c * nrm[:, 1]], -1)
        return xy, nw


def to_base(pose: np.ndarray, xy: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    d = xy - pose[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)


def true_ranges(world: World, pose: np.ndarray) -> np.ndarray:
    c, s = math.cos(pose[2]), math.sin(pose[2])
    tag = pose[:2] + np.array([c * TAG[0] - s * TAG[1], s * TAG[0] + c * TAG[1]])
    return np.sqrt(np.sum((world.anchors[:, :2] - tag) ** 2, 1) + (world.anchors[:, 2] - TAG[2]) ** 2)


ROOM = [(10, 13, 10, 229), (186, 189, 10, 229), (10, 189, 10, 13), (10, 189, 226, 229),   # outer walls, 4 cells
        (80, 99, 140, 159), (120, 131, 40, 71)]                                              # two obstacles
ANCHORS = np.array([[-5.0, -4.0, 2.5], [0.5, -4.2, 2.4], [5.0, -4.0, 2.6], [5.2, 0.3, 2.5], [5.0, 4.0, 2.4],
                    [0.2, 4.1, 2.5], [-5.0, 4.0, 2.6], [-5.1, 0.0, 2.4]])


def room(motion: np.ndarray = np.zeros(3)) -> World:
    return World(ROOM, (200, 240), ANCHORS, motion)


def scan_block(world: World, pose: np.ndarray, n: int, rng: np.random.Generator, sigma: float = 0.02,
               noise: float = 0.0, **kw) -> ScanBlock:
    xy, nw = world.surface(n, rng)
    xy = xy + noise * rng.standard_normal(n)[:, None] * nw
    return ScanBlock(to_base(pose, xy), world.field, sigma=sigma, **kw)


def range_block(world: World, pose: np.ndarray, rng: np.random.Generator, sigma: float = 0.05,
                noise: float = 0.0, **kw) -> RangeBlock:
    r = true_ranges(world, pose) + noise * rng.standard_normal(len(world.anchors))
    return RangeBlock(world.anchors, r, TAG, sigma=sigma, **kw)


START_OFFSET = np.array([0.25, -0.2, 0.12])


# ---------------------------------------------------------------------------------------------- tests
TAG2 = np.array([-0.35, 0.25, 1.1])      # a second tag: two tags observe the heading


def two_tag_block(world: World, pose: np.ndarray, **kw) -> RangeBlock:
    r1 = true_ranges(world, pose)
    c, s = math.cos(pose[2]), math.sin(pose[2])
    tag = pose[:2] + np.array([c * TAG2[0] - s * TAG2[1], s * TAG2[0] + c * TAG2[1]])
    r2 = np.sqrt(np.sum((world.anchors[:, :2] - tag) ** 2, 1) + (world.anchors[:, 2] - TAG2[2]) ** 2)
    A = len(world.anchors)
    return RangeBlock(np.concatenate([world.anchors, world.anchors]), np.concatenate([r1, r2]),
                      np.concatenate([np.tile(TAG, (A, 1)), np.tile(TAG2, (A, 1))]),
                      anchor_index=np.r_[np.arange(A), np.arange(A)], **kw)


@pytest.mark.parametrize('which', ['scan', 'uwb', 'both'])
def test_recovers_the_pose_from_noise_free_measurements(which: str) -> None:
    """Scans against the map's distance field, ranges against anchors (two tags: one does not observe the
    heading), both: the exact pose to 1e-6 from a start 0.3 m / 7 deg away, every residual zero."""
    rng = np.random.default_rng(1)
    w = room()
    blocks = []
    if which in ('scan', 'both'):
        blocks.append(scan_block(w, TRUE, 200, rng))
    if which in ('uwb', 'both'):
        blocks.append(two_tag_block(w, TRUE, sigma=0.05))
    sol = solve(blocks, TRUE + START_OFFSET)
    err = sol.pose - TRUE
    err[2] = wrap_angle(err[2])
    assert np.max(np.abs(err)) < 1e-6, err
    assert sol.converged and sol.inlier_share == 1.0 and sol.rms < 1e-5


def test_ranges_alone_recover_the_tag_and_a_known_heading() -> None:
    """Ranges from a tag at the base_link origin (no lever arm) fix the position exactly whatever the heading."""
    rng = np.random.default_rng(2)
    w = room()
    r = np.sqrt(np.sum((w.anchors[:, :2] - TRUE[:2]) ** 2, 1) + (w.anchors[:, 2] - TAG[2]) ** 2)
    blk = RangeBlock(w.anchors, r, np.array([0.0, 0.0, TAG[2]]), sigma=0.05)
    sol = solve([blk], TRUE + START_OFFSET)
    assert np.max(np.abs(sol.pose[:2] - TRUE[:2])) < 1e-6
    del rng


@pytest.mark.parametrize('robust', [False, True])
def test_plain_weighted_least_squares_matches_scipy(robust: bool) -> None:
    """Loss 'none': the solver is weighted least squares; scipy's least_squares on independently written residuals
    finds the same pose, and the covariance is (J^T W J)^-1 times the reported inflation. With scipy's own Huber
    loss (same threshold) the robust solve matches too."""
    rng = np.random.default_rng(3)
    w = room()
    sc = scan_block(w, TRUE, 150, rng, sigma=0.02, noise=0.02)
    sc.sigma = rng.uniform(0.01, 0.04, 150)
    if not robust:   # a weight multiplies a measurement's loss; scipy can weigh only plain squares
        sc.weights = rng.uniform(0.5, 2.0, 150)
    r_true = true_ranges(w, TRUE)
    ranges = r_true + 0.05 * rng.standard_normal(8)
    if robust:
        ranges[3] += 1.5      # an NLOS range
    rsig, rw = rng.uniform(0.03, 0.08, 8), (np.ones(8) if robust else rng.uniform(0.5, 2.0, 8))
    rb = RangeBlock(w.anchors, ranges, TAG, sigma=rsig, weights=rw)
    cfg = SolverConfig(loss='huber' if robust else 'none', loss_scale=2.0, tol=1e-12)
    sol = solve([sc, rb], TRUE + START_OFFSET, config=cfg)

    def residuals(x: np.ndarray) -> np.ndarray:
        c, s = math.cos(x[2]), math.sin(x[2])
        p = sc.points
        q = np.stack([x[0] + c * p[:, 0] - s * p[:, 1], x[1] + s * p[:, 0] + c * p[:, 1]], -1)
        d, _ = w.field.lookup(q)
        tag = x[:2] + np.array([c * TAG[0] - s * TAG[1], s * TAG[0] + c * TAG[1]])
        pred = np.sqrt(np.sum((w.anchors[:, :2] - tag) ** 2, 1) + (w.anchors[:, 2] - TAG[2]) ** 2)
        return np.concatenate([np.sqrt(sc.weights) * d / sc.sigma, np.sqrt(rw) * (ranges - pred) / rsig])

    ref = least_squares(residuals, TRUE + START_OFFSET, jac='3-point', xtol=1e-15, ftol=1e-15, gtol=1e-15,
                        loss='huber' if robust else 'linear', f_scale=2.0)
    assert np.max(np.abs(sol.pose - ref.x)) < 1e-6, (sol.pose, ref.x)
    if not robust:
        J = ref.jac
        cov = np.linalg.inv(J.T @ J) * sol.inflation
        np.testing.assert_allclose(sol.cov, cov, rtol=1e-4, atol=1e-12)
        e = ref.fun
        assert sol.chi2_red == pytest.approx(float(e @ e) / (len(e) - 3), rel=1e-6)


def test_moving_the_whole_world_moves_the_answer_with_it() -> None:
    rng = np.random.default_rng(4)
    T = np.array([37.0, -12.5, 2.3])
    sols = []
    for motion in (np.zeros(3), T):
        w = room(motion)
        truth = w.pose(TRUE)
        r = np.random.default_rng(5)
        xy, nw = w.surface(200, r)
        xy = xy + 0.02 * r.standard_normal(200)[:, None] * nw
        sc = ScanBlock(to_base(truth, xy), w.field, sigma=0.02)
        rb = RangeBlock(w.anchors, true_ranges(w, truth) + 0.05 * r.standard_normal(8), TAG, sigma=0.05,
                        bias_std=0.1, common_bias_std=0.3)
        Rm = np.eye(3)
        Rm[:2, :2] = [[math.cos(motion[2]), -math.sin(motion[2])], [math.sin(motion[2]), math.cos(motion[2])]]
        prior_cov = np.array([[0.04, 0.01, 0.0], [0.01, 0.09, 0.002], [0.0, 0.002, 0.01]])
        prior = (w.pose(TRUE + np.array([0.1, -0.05, 0.03])), Rm @ prior_cov @ Rm.T)
        sols.append((solve([sc, rb], w.pose(TRUE + START_OFFSET), prior=prior), Rm))
    (a, _), (b, Rm) = sols
    moved = se2_compose(T, a.pose)
    d = b.pose - moved
    d[2] = wrap_angle(d[2])
    assert np.max(np.abs(d)) < 1e-6, d
    np.testing.assert_allclose(b.cov, Rm @ a.cov @ Rm.T, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(b.residuals['uwb'], a.residuals['uwb'], atol=1e-6)
    del rng


def test_nees_on_gaussian_noise_is_three() -> None:
    """1000 draws of Gaussian scan and range noise with the sigmas the solver is told: the mean NEES of its
    covariance (3 dof) is within [2.5, 3.5] (default configuration: Huber loss, chi-square inflation)."""
    rng = np.random.default_rng(6)
    w = room()
    nees = []
    for _ in range(1000):
        sc = scan_block(w, TRUE, 200, rng, sigma=0.03, noise=0.03)
        rb = range_block(w, TRUE, rng, sigma=0.1, noise=0.1)
        start = TRUE + rng.normal(0, [0.1, 0.1, 0.03])
        sol = solve([sc, rb], start)
        e = sol.pose - TRUE
        e[2] = wrap_angle(e[2])
        nees.append(float(e @ np.linalg.solve(sol.cov, e)))
    m = float(np.mean(nees))
    assert 2.5 <= m <= 3.5, m


def test_a_corridor_leaves_the_along_direction_wide() -> None:
    """Two long parallel walls: the scan fixes the cross-corridor position and the heading, not the position
    along the corridor, whose variance comes out orders of magnitude wider (no invented certainty)."""
    rng = np.random.default_rng(7)
    solids = [(20, 23, 0, 799), (64, 67, 0, 799)]                  # 40 m long, 2 m wide
    w = World(solids, (90, 800), ANCHORS[:0], base_origin=np.array([-20.0, -2.2, 0.0]))
    truth = np.array([0.0, 0.0, 0.2])
    xy, nw = w.surface(4000, rng)
    xy = xy[np.abs(xy[:, 0]) < 8.0][:200]                           # what an 8 m scan sees: the side walls
    sc = ScanBlock(to_base(truth, xy), w.field, sigma=0.02)
    sol = solve([sc], truth + np.array([0.3, 0.1, 0.05]))
    assert abs(sol.pose[1] - truth[1]) < 1e-6 and abs(sol.pose[2] - truth[2]) < 1e-6
    var = np.diag(sol.cov)
    assert var[0] > 1e4 * max(var[1], 1e-12) and var[0] >= 100.0, var
    assert np.sqrt(var[1]) < 0.01


def test_one_uwb_tag_without_a_prior_leaves_yaw_wide() -> None:
    """One tag at a lever arm: the ranges fix the tag, not the heading. Without a prior the heading's variance is
    the cap (nothing invents it); a wide prior on the heading alone (a heading uniform on the circle) bounds it there
    and the position then follows the tag within the lever arm."""
    rng = np.random.default_rng(8)
    w = room()
    rb = range_block(w, TRUE, rng, sigma=0.05, noise=0.05)
    sol = solve([rb], TRUE + START_OFFSET)
    cfg = SolverConfig()
    assert sol.cov[2, 2] >= 0.5 * cfg.max_variance, sol.cov
    yaw_std = math.pi / math.sqrt(3.0)
    wide = (TRUE + START_OFFSET, np.diag([1e6, 1e6, yaw_std ** 2]))
    sol2 = solve([rb], TRUE + START_OFFSET, prior=wide)
    assert sol2.cov[2, 2] == pytest.approx(yaw_std ** 2, rel=0.05)
    assert np.sqrt(np.max(np.linalg.eigvalsh(sol2.cov[:2, :2]))) < np.hypot(*TAG[:2]) * yaw_std + 0.2
    for s in (sol, sol2):   # the tag position is exact to its noise whatever the heading
        c, sn = math.cos(s.pose[2]), math.sin(s.pose[2])
        tag = s.pose[:2] + np.array([c * TAG[0] - sn * TAG[1], sn * TAG[0] + c * TAG[1]])
        c, sn = math.cos(TRUE[2]), math.sin(TRUE[2])
        assert np.linalg.norm(tag - TRUE[:2] - np.array([c * TAG[0] - sn * TAG[1], sn * TAG[0] + c * TAG[1]])) < 0.1


def test_outliers_are_down_weighted_and_reported() -> None:
    rng = np.random.default_rng(9)
    w = room()
    sc = scan_block(w, TRUE, 200, rng, sigma=0.02, noise=0.02)
    pts = sc.points.copy()
    pts[:30] += rng.uniform(0.1, 0.3, (30, 2))            # 15 % clutter (people, furniture not in the map)
    sc = ScanBlock(pts, w.field, sigma=0.02)
    ranges = true_ranges(w, TRUE) + 0.05 * rng.standard_normal(8)
    ranges[2] += 2.0                                        # an NLOS range
    rb = RangeBlock(w.anchors, ranges, TAG, sigma=0.05)
    sol = solve([sc, rb], TRUE + START_OFFSET)
    err = sol.pose - TRUE
    assert np.hypot(err[0], err[1]) < 0.02 and abs(wrap_angle(err[2])) < 0.01
    assert not sol.inliers['uwb'][2] and sol.inliers['uwb'].sum() == 7
    assert sol.inlier_share < 0.95


def test_a_range_measured_long_is_judged_by_sigma_long() -> None:
    """The residual of a range measured longer than predicted is normalised by sigma_long (a non-line-of-sight
    delay only lengthens a range), one measured shorter by sigma; without sigma_long both by sigma."""
    w = room()
    ranges = true_ranges(w, TRUE)
    ranges[0] += 0.3
    ranges[1] -= 0.3
    lin = RangeBlock(w.anchors, ranges, TAG, sigma=0.1, sigma_long=0.5).linearize(TRUE, np.zeros(0))
    np.testing.assert_allclose(lin.e[:2], [0.3 / 0.5, -0.3 / 0.1])
    np.testing.assert_allclose(lin.e[2:], 0.0, atol=1e-9)
    plain = RangeBlock(w.anchors, ranges, TAG, sigma=0.1).linearize(TRUE, np.zeros(0))
    np.testing.assert_allclose(plain.e[:2], [3.0, -3.0])


def test_crossings_count_the_walls_between_two_points() -> None:
    """Runs of occupied cells along a segment: two walls, none, and the wall an end is mounted on (within the
    margin) not counted; no occupancy map: 0."""
    grid = np.zeros((200, 200), np.int8)
    grid[:, 60:62] = 100                           # walls at x 3.0-3.1 and 6.0-6.1 m
    grid[:, 120:122] = 100
    index = MapIndex(Site('walls', map=OccupancyMap(grid, 0.05, np.zeros(3))))
    p = np.array([[1.0, 5.0]] * 3)
    q = np.array([[9.0, 5.0], [2.5, 5.0], [6.12, 5.0]])
    assert index.crossings(p, q).tolist() == [2, 0, 1]
    assert index.crossings(p, q, margin=0.0).tolist() == [2, 0, 2]
    assert MapIndex(Site('no map', anchors=())).crossings(p, q).tolist() == [0, 0, 0]


def test_common_and_per_anchor_biases_are_estimated() -> None:
    """Ranges biased long by a common 0.2 m and per-anchor offsets: with the common offset free the pose is
    recovered and the offsets are found."""
    rng = np.random.default_rng(10)
    w = room()
    per = rng.normal(0, 0.03, 8)
    ranges = true_ranges(w, TRUE) + 0.2 + per
    rb = RangeBlock(w.anchors, ranges, TAG, sigma=0.01, common_bias_std=math.inf, bias_std=0.03)
    sc = scan_block(w, TRUE, 200, rng)
    sol = solve([sc, rb], TRUE + START_OFFSET)
    assert np.max(np.abs(sol.pose - TRUE)) < 1e-3
    common, offs = rb.offsets(sol.extra['uwb'])
    assert common + offs.mean() == pytest.approx(0.2 + per.mean(), abs=0.01)


def test_the_tags_height_offset_is_estimated_where_the_ranges_observe_it() -> None:
    """Ranges from a tag 0.4 m above where TF puts it: with the height offset estimated (height_std > 0) the
    position and the offset are recovered from noise-free ranges (the heading given); the height is a parameter
    only where it is estimated."""
    rng = np.random.default_rng(12)
    w = room()
    high = TAG + np.array([0.0, 0.0, 0.4])
    c, s = math.cos(TRUE[2]), math.sin(TRUE[2])
    tag = TRUE[:2] + np.array([c * TAG[0] - s * TAG[1], s * TAG[0] + c * TAG[1]])
    ranges = np.sqrt(np.sum((w.anchors[:, :2] - tag) ** 2, 1) + (w.anchors[:, 2] - high[2]) ** 2)
    rb = RangeBlock(w.anchors, ranges, TAG, sigma=0.01, height_std=1e3)      # a free height
    sol = solve([rb], TRUE + START_OFFSET, prior=(TRUE, np.diag([1.0, 1.0, 1e-6])))
    assert np.max(np.abs(sol.pose[:2] - TRUE[:2])) < 1e-5
    assert rb.height(sol.extra['uwb']) == pytest.approx(0.4, abs=1e-5)
    fixed = RangeBlock(w.anchors, ranges, TAG, sigma=0.01)
    off = solve([fixed, scan_block(w, TRUE, 200, rng)], TRUE + START_OFFSET)
    assert fixed.height(off.extra['uwb']) is None and sol.extra_var['uwb'].shape == (1,)


def test_plane_block_recovers_the_pose_from_a_point_map() -> None:
    """3D points against a point map with normals (point-to-plane): walls of a box room plus the floor."""
    rng = np.random.default_rng(11)
    walls = []
    for x in np.arange(-5, 5.01, 0.1):
        for z in np.arange(0.1, 2.5, 0.2):
            walls += [((x, -4.0, z), (0, 1, 0)), ((x, 4.0, z), (0, -1, 0))]
    for y in np.arange(-4, 4.01, 0.1):
        for z in np.arange(0.1, 2.5, 0.2):
            walls += [((-5.0, y, z), (1, 0, 0)), ((5.0, y, z), (-1, 0, 0))]
    walls += [((2.0 + 0.1 * i, 1.0, z), (0, -1, 0)) for i in range(15) for z in np.arange(0.1, 1.0, 0.2)]
    P = np.array([p for p, _ in walls])
    N = np.array([n for _, n in walls], float)
    pm = PointMap.from_points(P, N)
    idx = rng.choice(len(P), 300, replace=False)
    q = P[idx] + 0.0 * N[idx]
    xy = to_base(TRUE, q[:, :2])
    pts = np.column_stack([xy, q[:, 2]])
    sol = solve([PlaneBlock(pts, pm, sigma=0.02)], TRUE + np.array([0.04, -0.03, 0.02]))
    assert np.max(np.abs(sol.pose - TRUE)) < 1e-6
    # correspondences kept while no point moves by more than `reassociate`: the same answer from fewer searches
    every, kept = PlaneBlock(pts, pm, sigma=0.02, reassociate=0.0), PlaneBlock(pts, pm, sigma=0.02)
    a, b = (solve([blk], TRUE + np.array([0.3, -0.2, 0.05])) for blk in (every, kept))
    assert np.max(np.abs(a.pose - TRUE)) < 1e-6 and np.max(np.abs(b.pose - TRUE)) < 1e-6
    assert kept.queries < every.queries


def test_bad_input_is_refused() -> None:
    w = room()
    with pytest.raises(ValueError):
        ScanBlock(np.zeros((3, 2)), w.field, sigma=0.0)
    with pytest.raises(ValueError):
        RangeBlock(np.zeros((3, 3)), np.ones(2), TAG)
    with pytest.raises(ValueError):
        solve([], np.array([np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError):
        SolverConfig(loss='l1')
