"""Scan-to-map registration: 2D and 3D converge from a perturbed start on a generated building; degenerate geometry
shows in the covariance; the full ICP + ESKF baselines converge and track."""
from __future__ import annotations

import math

import numpy as np
import pytest

from flm_core.datagen import ScenarioConfig, generate_scenario
from flm_core.estimation.baselines import IcpBaseline
from flm_core.estimation.harness import perturbed_start, run_baseline, scenario_extrinsics, scenario_messages, \
    scenario_point_map
from flm_core.estimation.icp import IcpConfig, PointMap, deskew, register, sensor_to_base, voxel_downsample
from flm_core.site import OccupancyMap

OFFSETS = [np.array([0.3, 0.0, math.radians(10)]), np.array([-0.2, 0.22, -math.radians(10)])]


@pytest.fixture(scope='module')
def scenario():
    cfg = ScenarioConfig(duration=10.0)
    cfg.building.families = ('cluttered',)
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.uwb.enabled = False
    cfg.motion.kidnap_prob = 0.0
    return generate_scenario(cfg, 31)


def _scan_points(sc, i: int) -> tuple[np.ndarray, np.ndarray]:
    """(deskewed 2D points in base_link, true pose) of scan i, using the true twist."""
    s = sc.streams['lidar2d']
    m = sc.config.sensors.lidar2d.mount
    scan = list(s.measurements())[i]
    g = sc.trajectory.sample(np.array([s.timing.t[i]]))
    v = scan.valid()
    pts = sensor_to_base(scan.points(), (m.x, m.y, m.z, m.yaw))
    twist = np.r_[g.body_velocity()[0], g.yaw_rate[0]]
    return deskew(pts, (np.arange(len(scan.ranges)) * scan.time_increment)[v], twist), g.pose[0]


@pytest.mark.parametrize('engine', ['planar', 'open3d'])
def test_2d_registration_converges_from_perturbed_start(scenario, engine: str) -> None:
    pm = PointMap.from_occupancy(scenario.site().map)
    for i in (15, 60):
        pts, gt = _scan_points(scenario, i)
        for off in OFFSETS:
            r = register(pm, pts, gt + off, IcpConfig(engine=engine))
            assert r.ok and r.fitness > 0.8
            assert np.hypot(*(r.pose[:2] - gt[:2])) < 0.03, (i, off, r.pose - gt)
            assert abs(r.pose[2] - gt[2]) < math.radians(0.5)
            sd = np.sqrt(np.diag(r.cov))
            assert np.all(sd < [0.1, 0.1, 0.02])


def test_3d_registration_converges_from_perturbed_start(scenario) -> None:
    pm = scenario_point_map(scenario, 3)
    assert pm.dim == 3
    s = scenario.streams['lidar3d']
    m = scenario.config.sensors.lidar3d.mount
    for i in (15, 60):
        cl = s.cloud(i)
        f = cl.finite()
        g = scenario.trajectory.sample(np.array([s.timing.t[i]]))
        gt = g.pose[0]
        pts = deskew(sensor_to_base(cl.xyz[f], (m.x, m.y, m.z, m.yaw)), cl.time[f],
                     np.r_[g.body_velocity()[0], g.yaw_rate[0]])
        pts, _ = voxel_downsample(pts, 0.3)
        for off in OFFSETS:
            r = register(pm, pts, gt + off)
            assert r.ok
            assert np.hypot(*(r.pose[:2] - gt[:2])) < 0.03, (i, off, r.pose - gt)
            assert abs(r.pose[2] - gt[2]) < math.radians(0.5)


def test_corridor_degeneracy_shows_in_the_covariance() -> None:
    """Two long parallel walls: the position along the corridor is unconstrained, across it is not."""
    grid = np.zeros((60, 800), dtype=np.int8)
    grid[10, :] = 100
    grid[50, :] = 100
    occ = OccupancyMap(grid=grid, resolution=0.05, origin=np.zeros(3))
    pm = PointMap.from_occupancy(occ)
    a = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    pose = np.array([20.0, 1.5, 0.0])
    # ranges to the walls at y = 0.5+ and y = 2.5 (cell faces) from y = 1.5
    with np.errstate(divide='ignore'):
        r = np.where(np.sin(a) > 0, (2.5 - pose[1]) / np.sin(a), (0.55 - pose[1]) / np.sin(a))
    keep = np.isfinite(r) & (r < 15) & (r > 0)
    pts = np.stack([r[keep] * np.cos(a[keep]), r[keep] * np.sin(a[keep])], -1)
    res = register(pm, pts, pose + [0.0, 0.1, 0.02])
    sd = np.sqrt(np.diag(res.cov))
    assert abs(res.pose[1] - pose[1]) < 0.02 and abs(res.pose[2]) < 0.005
    assert sd[0] > 10 * sd[1]


@pytest.mark.parametrize('dim', [2, 3])
def test_icp_baseline_converges_and_tracks(scenario, dim: int) -> None:
    pm = scenario_point_map(scenario, dim)
    b = IcpBaseline(pm, scenario_extrinsics(scenario))
    eval_t = np.arange(0.5, scenario.config.duration, 0.1)
    gt = scenario.trajectory.sample(eval_t).pose
    p0, c0 = perturbed_start(scenario.trajectory.sample(np.array([0.0])).pose[0], np.random.default_rng(5))
    streams = ('imu', 'odom', 'lidar2d') if dim == 2 else ('imu', 'odom', 'lidar3d')
    r = run_baseline(b, scenario_messages(scenario, streams), eval_t, (0.0, p0, c0))
    err = np.hypot(r.pose[:, 0] - gt[:, 0], r.pose[:, 1] - gt[:, 1])
    late = eval_t > 2.0
    assert np.all(np.isfinite(err))
    assert err[late].max() < 0.05, err[late].max()
    assert np.degrees(np.abs(np.angle(np.exp(1j * (r.pose[late, 2] - gt[late, 2]))))).max() < 1.0
    assert r.diagnostics['filter']['icp']['accepted'] > 0.9 * len(scenario.streams['lidar2d'].timing.t)
    assert len(r.update_ms) > 50


def test_the_voxel_filter_keeps_the_first_point_of_each_voxel_and_normal_direction():
    """Against the definition, written out: the first point (in input order) of every voxel, with normals of every
    rounded normal direction in it; the order of the input is kept; huge coordinates are no special case."""
    rng = np.random.default_rng(7)
    pts = np.vstack([rng.uniform(-20.0, 20.0, (3000, 3)), rng.uniform(-1e15, 1e15, (50, 3))])
    nrm = rng.normal(size=pts.shape)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    for normals in (None, nrm):
        first: dict[tuple[int, ...], int] = {}
        for i, p in enumerate(pts):
            k = tuple(np.floor(p / 0.5).astype(np.int64)) \
                + (() if normals is None else tuple(np.rint(normals[i] * 2.0).astype(np.int64)))
            first.setdefault(k, i)
        keep = sorted(first.values())
        got, got_n = voxel_downsample(pts, 0.5, normals)
        np.testing.assert_array_equal(got, pts[keep])
        if normals is not None:
            np.testing.assert_array_equal(got_n, normals[keep])
