"""FLM structural properties with a small random-init model (no trained weights needed):
equivariance under a rigid motion of the whole world, permutation invariance over anchors/points/beams,
the same weights on 3/16 anchors and 90/2048 beams, missing modalities and sites without a map."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from flm_core.datagen import ScenarioConfig, generate_scenario
from flm_core.measurements import LaserScan2D, PointCloud
from flm_core.model.inference import Localizer
from flm_core.model.net import FLM, FLMConfig
from flm_core.model.replay import ScenarioReplay
from flm_core.model.tokens import MODALITIES, TokenConfig
from flm_core.site import Anchor, OccupancyMap, Site

POS_TOL = 1e-3   # m: equivariance tolerance on the position (float32 network, float64 preprocessing)
YAW_TOL = 1e-3   # rad
COV_TOL = 1e-4   # relative, on the rotated covariance


def random_localizer(seed: int = 0) -> Localizer:
    torch.manual_seed(seed)
    model = FLM(FLMConfig(d_model=32, n_layers=2, n_heads=4))
    with torch.no_grad():
        for p in model.parameters():  # zero-initialised heads would make the test trivial
            p.add_(torch.randn_like(p) * 0.1)
    model.eval()
    return Localizer(model, {'tokens': TokenConfig().to_dict()})


def small_scenario(seed: int, beams: int = 360, anchors: tuple[int, int] = (6, 6), duration: float = 4.0):
    cfg = ScenarioConfig(duration=duration)
    cfg.building.families = ('office',)
    cfg.building.size_x, cfg.building.size_y = (14.0, 16.0), (10.0, 12.0)
    cfg.anchors.count = anchors
    cfg.sensors.lidar2d.beams = beams
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.lidar3d.beams = 90
    cfg.sensors.lidar3d.rings = 8
    cfg.sensors.depth.enabled = True
    cfg.sensors.depth.width, cfg.sensors.depth.height = 32, 24
    cfg.motion.kidnap_prob = 0.0
    return ScenarioReplay(generate_scenario(cfg, seed))


@pytest.fixture(scope='module')
def replay() -> ScenarioReplay:
    return small_scenario(11, anchors=(16, 16), beams=2048)


@pytest.fixture(scope='module')
def loc() -> Localizer:
    return random_localizer()


def se2(T: np.ndarray, p: np.ndarray) -> np.ndarray:
    c, s = math.cos(T[2]), math.sin(T[2])
    return np.array([T[0] + c * p[0] - s * p[1], T[1] + s * p[0] + c * p[1], (T[2] + p[2] + math.pi) % (2 * math.pi)
                     - math.pi])


def moved_site(site: Site, T: np.ndarray) -> Site:
    """The same building after the rigid motion T = (x, y, yaw) of the whole world (grid cells unchanged)."""
    m = site.map
    assert m is not None
    new_map = OccupancyMap(grid=m.grid, resolution=m.resolution, origin=se2(T, m.origin))
    c, s = math.cos(T[2]), math.sin(T[2])
    anchors = tuple(Anchor(a.id, np.array([T[0] + c * a.position[0] - s * a.position[1],
                                           T[1] + s * a.position[0] + c * a.position[1], a.position[2]]), a.bias)
                    for a in site.anchors)
    return replace(site, map=new_map, anchors=anchors)


def rot3(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


@pytest.mark.parametrize('T', [(37.5, -12.25, 0.7), (-140.0, 55.0, -2.9), (0.0, 0.0, math.pi / 2)])
def test_equivariance_tracking(replay: ScenarioReplay, loc: Localizer, T: tuple) -> None:
    T = np.array(T)
    t = 3.0
    w = replay.window(t, 1.2)
    truth = replay.truth(t)
    prior = truth + np.array([0.3, -0.2, 0.1])
    P = np.diag([0.2, 0.1, 0.02])
    P[0, 1] = P[1, 0] = 0.05
    a = loc.localize(w, replay.site, t, prior, P, replay.rig)
    b = loc.localize(w, moved_site(replay.site, T), t, se2(T, prior), rot3(T[2]) @ P @ rot3(T[2]).T, replay.rig)
    expect = se2(T, a.pose)
    assert np.hypot(*(b.pose[:2] - expect[:2])) < POS_TOL
    assert abs((b.pose[2] - expect[2] + math.pi) % (2 * math.pi) - math.pi) < YAW_TOL
    cov_expect = rot3(T[2]) @ a.cov @ rot3(T[2]).T
    assert np.abs(b.cov - cov_expect).max() <= COV_TOL * np.abs(cov_expect).max()
    for m in MODALITIES:
        assert abs(a.health[m] - b.health[m]) < 1e-4


def test_equivariance_global(replay: ScenarioReplay, loc: Localizer) -> None:
    """Global hypotheses live on the map's own lattice (cells x yaw bins fixed to the map origin), so the global
    answer moves with the world too."""
    T = np.array([12.0, -7.0, 1.1])
    t = 3.0
    w = replay.window(t, 1.2, ['scan', 'uwb', 'odom'])
    a = loc.localize(w, replay.site, t, rig=replay.rig)
    b = loc.localize(w, moved_site(replay.site, T), t, rig=replay.rig)
    assert a.mode == b.mode == 'global'
    expect = se2(T, a.pose)
    assert np.hypot(*(b.pose[:2] - expect[:2])) < POS_TOL
    assert abs((b.pose[2] - expect[2] + math.pi) % (2 * math.pi) - math.pi) < YAW_TOL


def test_permutation_invariance(replay: ScenarioReplay, loc: Localizer) -> None:
    t = 3.0
    w = replay.window(t, 1.2)
    prior = replay.truth(t) + np.array([0.2, 0.1, -0.05])
    a = loc.localize(w, replay.site, t, prior, None, replay.rig)
    rng = np.random.default_rng(0)
    # anchors listed in another order
    site2 = replace(replay.site, anchors=tuple(replay.site.anchors[i] for i in rng.permutation(len(replay.site.anchors))))
    # points of the cloud and beams of the scan shuffled
    w2 = dict(w)
    st, pc = w['points'][-1]
    perm = rng.permutation(len(pc.xyz))
    w2['points'] = w['points'][:-1] + [(st, PointCloud(stamp=pc.stamp, frame_id=pc.frame_id, xyz=pc.xyz[perm]))]
    st, sc = w['scan'][-1]
    perm = rng.permutation(len(sc.ranges))
    w2['scan'] = w['scan'][:-1] + [(st, LaserScan2D(stamp=sc.stamp, frame_id=sc.frame_id, angles=sc.angles[perm],
                                                    ranges=sc.ranges[perm], range_min=sc.range_min,
                                                    range_max=sc.range_max))]
    # UWB samples of the same stamp in another order
    w2['uwb'] = sorted(w['uwb'], key=lambda x: (x[0], -hash(x[1].anchor_id) % 97))
    b = loc.localize(w2, site2, t, prior, None, replay.rig)
    assert np.abs(a.pose - b.pose).max() < 1e-5
    assert np.abs(a.cov - b.cov).max() < 1e-7


def test_same_weights_any_anchor_and_beam_count(loc: Localizer) -> None:
    for beams, anchors in ((90, (3, 3)), (2048, (16, 16))):
        rp = small_scenario(5, beams=beams, anchors=anchors)
        assert len(rp.site.anchors) == anchors[0]
        t = 3.0
        w = rp.window(t, 1.2)
        assert len(w['scan'][-1][1].ranges) == beams
        est = loc.localize(w, rp.site, t, rp.truth(t), None, rp.rig)
        assert est.mode == 'tracking' and np.all(np.isfinite(est.pose)) and np.all(np.linalg.eigvalsh(est.cov) > 0)
        assert est.present['scan'] and est.present['uwb']


def test_missing_modalities_and_sites(replay: ScenarioReplay, loc: Localizer) -> None:
    t = 3.0
    prior = replay.truth(t)
    subsets = [('scan', 'odom'), ('points', 'imu'), ('depth', 'odom'), ('uwb', 'imu'), ('uwb',), MODALITIES,
               ('imu',), ()]
    for sub in subsets:
        w = replay.window(t, 1.2, list(sub))
        est = loc.localize(w, replay.site, t, prior, None, replay.rig)
        assert np.all(np.isfinite(est.pose)) and np.all(np.isfinite(est.cov))
        assert {m for m, v in est.present.items() if v} == set(sub)
        assert all(est.health[m] == 0.0 for m in MODALITIES if m not in sub)
    # late / asynchronous data: the newest scan is older than the newest odometry by 0.4 s
    w = replay.window(t, 1.2)
    w['scan'] = [x for x in w['scan'] if x[0] < t - 0.4]
    assert np.all(np.isfinite(loc.localize(w, replay.site, t, prior, None, replay.rig).pose))
    # a site with anchors only (no map) and one with only a point map
    anchors_only = Site(name='a', anchors=replay.site.anchors)
    est = loc.localize(replay.window(t, 1.2, ['uwb', 'imu']), anchors_only, t, prior, None, replay.rig)
    assert np.all(np.isfinite(est.pose))
    est = loc.localize(replay.window(t, 1.2, ['uwb']), anchors_only, t, rig=replay.rig)  # global, UWB only
    assert est.mode == 'global' and np.all(np.isfinite(est.pose))
    pts = np.concatenate([replay.site.map.occupied_points(), np.full((int(replay.site.map.occupied().sum()), 1), 1.0)], 1)
    pm_site = Site(name='p', point_map=pts.astype(np.float32), anchors=replay.site.anchors)
    est = loc.localize(replay.window(t, 1.2, ['points', 'imu']), pm_site, t, prior, None, replay.rig)
    assert np.all(np.isfinite(est.pose))
