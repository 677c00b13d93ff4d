"""flm_core.datagen: determinism, ray casting, UWB NLOS/CRLB, IMU integration, motion, bad input (no ROS)."""
from __future__ import annotations

import hashlib
import math
import sys

import numpy as np
import pytest

from flm_core.datagen import ConfigError, ScenarioConfig, SeedError, generate_scenario, write_shard
from flm_core.datagen.anchors import AnchorSet
from flm_core.datagen.buildings import FAMILY_SIZES, MAT, build_from_plan, generate_building
from flm_core.datagen.config import BuildingConfig
from flm_core.datagen.crlb import crlb_rmse, range_crlb
from flm_core.datagen.motion import HOLD, MotionParams, _Builder, plan_trajectory
from flm_core.datagen.raycast import Raycaster
from flm_core.datagen.seeds import EVAL_SEED_MAX, EVAL_SEED_MIN, check_training_seeds, evaluation_seeds, rng_for
from flm_core.datagen.sensors import simulate_imu, simulate_uwb
from flm_core.datagen.sensors.lidar import simulate_lidar2d
from flm_core.datagen.shards import iter_windows, load_shard


def small_cfg(duration: float = 4.0, **sensors: bool) -> ScenarioConfig:
    cfg = ScenarioConfig(duration=duration, window=2.0, stride=2.0)
    cfg.building.size_x, cfg.building.size_y = (12.0, 16.0), (10.0, 12.0)
    for k, v in sensors.items():
        getattr(cfg.sensors, k).enabled = v
    return cfg


def box_room(inner_walls: list | None = None, size: float = 10.0):
    """A size x size room whose 0.2 m walls have inner faces at 0.2 and size - 0.2 (grid aligned)."""
    a, b = 0.1, size - 0.1
    walls = [[a, a, b, a, 0.2, MAT['concrete'], 3.0], [b, a, b, b, 0.2, MAT['concrete'], 3.0],
             [b, b, a, b, 0.2, MAT['concrete'], 3.0], [a, b, a, a, 0.2, MAT['concrete'], 3.0]]
    walls += inner_walls or []
    return build_from_plan('test', (size, size), 3.0, np.array(walls), np.zeros((0, 7)), 0.05)


# ------------------------------------------------------------------------------------------------ no ROS imports
def test_flm_core_datagen_imports_no_ros():
    import subprocess

    code = ('import sys, flm_core.datagen, flm_core.datagen.cli, flm_core.datagen.bagwriter, '
            'flm_core.datagen.preview, flm_core.datagen.shards;'
            'bad=[m for m in sys.modules if m.split(".")[0] in ("rclpy","sensor_msgs","nav_msgs","geometry_msgs",'
            '"tf2_msgs","std_msgs")]; print(bad); sys.exit(1 if bad else 0)')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------------------------------------ determinism
def test_same_seed_byte_identical_shards(tmp_path):
    cfg = small_cfg(3.0)
    digests = []
    for k in range(2):
        sc = generate_scenario(cfg, 11)
        p = tmp_path / f's{k}.npz'
        write_shard(sc, p)
        digests.append(hashlib.sha256(p.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    other = tmp_path / 'o.npz'
    write_shard(generate_scenario(cfg, 12), other)
    assert hashlib.sha256(other.read_bytes()).hexdigest() != digests[0]


def test_dimensions_vary_independently():
    cfg = small_cfg(3.0)
    a = generate_scenario(cfg, 5)
    cfg2 = small_cfg(3.0)
    cfg2.sensors.lidar2d.beams = 720
    cfg2.sensors.imu.rate = 400.0
    b = generate_scenario(cfg2, 5)
    assert np.array_equal(a.building.map.grid, b.building.map.grid)
    assert np.array_equal(a.anchors.positions, b.anchors.positions)
    assert np.array_equal(a.ground_truth.pose, b.ground_truth.pose)
    assert np.array_equal(a.streams['uwb'].range, b.streams['uwb'].range)


def test_shard_contents_and_windows(tmp_path):
    sc = generate_scenario(small_cfg(4.0), 3)
    write_shard(sc, tmp_path / 's.npz')
    d = load_shard(tmp_path / 's.npz')
    assert d['meta']['seed'] == 3 and d['windows/t0'].tolist() == [0.0, 2.0]
    assert d['site/grid'].dtype == np.int8 and d['site/anchor_pos'].shape[1] == 3
    assert d['uwb_epoch/crlb'].shape[1:] == (2, 2)
    wins = list(iter_windows(d))
    assert len(wins) == 2
    for w in wins:
        for k in ('lidar2d/stamp', 'imu/stamp', 'uwb/stamp', 'odom/stamp'):
            s = w[k]
            assert len(s) > 0 and np.all((s >= w['t0']) & (s < w['t1']))
        assert w['lidar2d/ranges'].shape[1] == 360 and len(w['gt/pose']) > 0


# ------------------------------------------------------------------------------------------------ ray casting
def test_rays_hit_first_wall_analytic():
    room = box_room()
    rc = Raycaster.from_building(room)
    ang = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    o = np.tile([5.0, 5.0, 0.3], (len(ang), 1))
    d = np.stack([np.cos(ang), np.sin(ang), np.zeros_like(ang)], 1)
    t, m = rc.cast(o, d, 30.0)
    expected = 4.8 / np.maximum(np.abs(np.cos(ang)), np.abs(np.sin(ang)))
    np.testing.assert_allclose(t, expected, atol=1e-5)
    assert np.all(m == MAT['concrete'])
    # an interior wall (x in [7.0, 7.2], y in [2, 8]) is hit first from the left
    room2 = box_room([[7.1, 2.0, 7.1, 8.0, 0.2, MAT['drywall'], 3.0]])
    rc2 = Raycaster.from_building(room2)
    a = np.linspace(-0.5, 0.5, 101)
    o = np.tile([3.0, 5.0, 0.3], (len(a), 1))
    d = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
    t, m = rc2.cast(o, d, 30.0)
    first = 4.0 / np.cos(a)  # inner face x = 7.0 (wall cells 7.0..7.2)
    y_hit = 5.0 + first * np.sin(a)
    on_wall = np.abs(y_hit - 5.0) < 2.9  # clear of the wall's extended ends
    np.testing.assert_allclose(t[on_wall], first[on_wall], atol=1e-5)
    assert np.all(m[on_wall] == MAT['drywall'])
    assert np.all(t <= np.where(on_wall, first, np.inf) + 1e-5)


def test_rays_never_exceed_max_range():
    room = box_room(size=40.0)
    rc = Raycaster.from_building(room)
    ang = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    o = np.tile([20.0, 20.0, 0.3], (360, 1))
    d = np.stack([np.cos(ang), np.sin(ang), np.zeros(360)], 1)
    t, _ = rc.cast(o, d, 10.0)
    assert np.all(np.isinf(t))  # walls are 19.8 m away
    t, _ = rc.cast(o, d, 25.0)
    assert np.all(t[np.isfinite(t)] <= 25.0) and np.isfinite(t).sum() > 0
    # simulated scans: every finite range within [range_min, range_max]
    cfg = small_cfg(3.0)
    cfg.sensors.lidar2d.range_max = 6.0
    sc = generate_scenario(cfg, 8)
    r = sc.streams['lidar2d'].ranges
    fin = r[np.isfinite(r)]
    assert fin.size > 0 and fin.max() <= 6.0 and fin.min() >= cfg.sensors.lidar2d.range_min
    assert np.isposinf(r).any()


def test_3d_rays_floor_and_furniture():
    # a desk top (zlo 0.7, zhi 0.75) is passed under by a ray at 0.3 m and hit by one at 0.72 m
    walls = [[0.1, 0.1, 9.9, 0.1, 0.2, 1, 3.0], [9.9, 0.1, 9.9, 9.9, 0.2, 1, 3.0], [9.9, 9.9, 0.1, 9.9, 0.2, 1, 3.0],
             [0.1, 9.9, 0.1, 0.1, 0.2, 1, 3.0]]
    room = build_from_plan('t', (10, 10), 3.0, np.array(walls),
                           np.array([[6.0, 4.0, 7.0, 6.0, 0.7, 0.75, MAT['wood']]]), 0.05)
    rc = Raycaster.from_building(room)
    o = np.array([[3.0, 5.0, 0.3], [3.0, 5.0, 0.72], [3.0, 5.0, 1.0]])
    d = np.array([[1.0, 0, 0], [1.0, 0, 0], [0.0, 0.0, -1.0]])
    t, _ = rc.cast(o, d, 30.0)
    np.testing.assert_allclose(t, [6.8, 3.0, 1.0], atol=1e-5)


# ------------------------------------------------------------------------------------------------ UWB
def _one_wall_world():
    return box_room([[5.1, 0.2, 5.1, 9.8, 0.2, MAT['drywall'], 3.0]])  # full-height wall x in [5.0, 5.2]


def test_nlos_bias_exactly_when_segment_crosses_wall():
    b = _one_wall_world()
    rng = np.random.default_rng(0)
    cfg = ScenarioConfig().sensors.uwb
    cfg.multipath_prob, cfg.dropout, cfg.attenuation_budget = 0.0, 0.0, 1e9
    # tag parked at various places, anchors scattered on both sides
    anchors = AnchorSet(ids=tuple(f'a{i}' for i in range(6)),
                        positions=np.array([[1, 1, 2.5], [1, 9, 2.5], [9, 1, 2.5], [9, 9, 2.5], [4.5, 5, 2], [6, 3, 2]],
                                           float), bias=np.zeros(6), layout='random')
    for k in range(8):
        xy = rng.uniform([0.8, 0.8], [9.2, 9.2])
        if 4.7 < xy[0] < 5.5:
            xy[0] = 3.0
        b_ = _Builder(MotionParams())
        b_.add(HOLD, np.array([xy[0], xy[1], 0.0]), (1.0, 0.0), 0.0, 0.0, dur=5.0)
        traj = b_.build(())
        st = simulate_uwb(cfg, traj, b, anchors, None, 1.0, np.random.default_rng(k))
        anc = anchors.positions[st.anchor]
        tag_x = xy[0]
        # analytic: the wall plane x in [5.0, 5.2] spans y 0.1..9.9; the segment crosses it iff the endpoints lie
        # on opposite sides of x = 5.1 and the crossing y is within the wall
        s = (5.1 - tag_x) / (anc[:, 0] - tag_x)
        y_c = xy[1] + s * (anc[:, 1] - xy[1])
        crosses = (np.sign(anc[:, 0] - 5.1) != np.sign(tag_x - 5.1)) & (y_c > 0.2) & (y_c < 9.8)
        assert np.array_equal(st.nlos_bias > 0, crosses)
        assert np.array_equal(~st.los, crosses)
        assert np.all(st.nlos_bias[~crosses] == 0.0)
    # more walls crossed -> larger mean bias
    b2 = box_room([[3.1, 0.2, 3.1, 9.8, 0.2, MAT['drywall'], 3.0], [6.1, 0.2, 6.1, 9.8, 0.2, MAT['drywall'], 3.0]])
    a2 = AnchorSet(ids=('a0', 'a1'), positions=np.array([[4.5, 5.0, 1.0], [8.0, 5.0, 1.0]]), bias=np.zeros(2),
                   layout='random')
    bb = _Builder(MotionParams())
    bb.add(HOLD, np.array([1.5, 5.0, 0.0]), (1.0, 0.0), 0.0, 0.0, dur=30.0)
    st = simulate_uwb(cfg, bb.build(()), b2, a2, None, 20.0, np.random.default_rng(1))
    one, two = st.nlos_bias[st.anchor == 0], st.nlos_bias[st.anchor == 1]
    assert np.all(st.n_crossings[st.anchor == 0] == 1) and np.all(st.n_crossings[st.anchor == 1] == 2)
    assert two.mean() > 1.5 * one.mean() > 0


def test_zero_anchors_with_uwb_is_an_error():
    cfg = ScenarioConfig()
    cfg.anchors.count = (0, 0)
    with pytest.raises(ConfigError, match='anchors.count'):
        cfg.validate()
    cfg.sensors.uwb.enabled = False
    cfg.validate()


# ------------------------------------------------------------------------------------------------ CRLB
def test_crlb_closed_form_symmetric_layout():
    sigma = 0.1
    for n in (3, 4, 8):
        th = 2 * np.pi * np.arange(n) / n + 0.3
        anchors = np.stack([5 + 4 * np.cos(th), 5 + 4 * np.sin(th), np.full(n, 1.0)], 1)
        cov = range_crlb(np.array([[5.0, 5.0, 1.0]]), anchors, np.full(n, sigma))
        np.testing.assert_allclose(cov[0], 2 * sigma ** 2 / n * np.eye(2), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(crlb_rmse(cov), [2 * sigma / math.sqrt(n)], rtol=1e-9)
    # collinear anchors with the tag on the line: singular -> inf
    cov = range_crlb(np.array([[0.0, 0.0, 0.0]]), np.array([[1.0, 0, 0], [2.0, 0, 0], [-3.0, 0, 0]]), 0.1)
    assert np.isinf(cov).all()


def test_crlb_counts_the_random_part_of_a_nlos_delay():
    """Gaussian noise plus an exponential delay (scale tau): its Fisher information lies between a Gaussian of the
    same variance and the Gaussian part alone, matches an independent quadrature, and tau = 0 is the Gaussian;
    the bound of a layout grows with the delay."""
    from scipy import integrate, stats
    from flm_core.datagen.crlb import emg_information
    sigma, tau = 0.15, 0.4
    f = emg_information(np.array([sigma]), np.array([tau]))[0]
    assert 1 / (sigma ** 2 + tau ** 2) < f < 1 / sigma ** 2
    d = stats.exponnorm(tau / sigma, scale=sigma)
    score = lambda x: (d.logpdf(x + 1e-6) - d.logpdf(x - 1e-6)) / 2e-6  # noqa: E731
    ref, _ = integrate.quad(lambda x: d.pdf(x) * score(x) ** 2, -2.0, 10.0, points=[0.0], limit=200)
    assert f == pytest.approx(ref, rel=0.02)
    assert emg_information(np.array([sigma]), np.array([0.0]))[0] == pytest.approx(1 / sigma ** 2)
    th = 2 * np.pi * np.arange(4) / 4
    anchors = np.stack([4 * np.cos(th), 4 * np.sin(th), np.ones(4)], 1)
    tag = np.array([[0.0, 0.0, 1.0]])
    plain, delayed = (crlb_rmse(range_crlb(tag, anchors, np.full(4, sigma), tau=np.full(4, t)))[0] for t in (0, tau))
    assert delayed == pytest.approx(plain * math.sqrt(1 / sigma ** 2 / f))


def test_crlb_stored_per_epoch():
    sc = generate_scenario(small_cfg(3.0), 4)
    u = sc.streams['uwb']
    assert u.crlb.shape == (len(u.epoch_t), 2, 2)
    fin = np.isfinite(u.crlb[:, 0, 0])
    assert fin.any() and np.all(u.crlb[fin, 0, 0] > 0)


# ------------------------------------------------------------------------------------------------ IMU
@pytest.mark.parametrize('robot', ['diff_drive', 'holonomic'])
def test_imu_integration_reproduces_trajectory(robot):
    b = generate_building(BuildingConfig(families=('hall',), size_x=(20, 20), size_y=(15, 15)), rng_for(1, 'building'))
    cfg = ScenarioConfig()
    mp = MotionParams(robot=robot, max_speed=1.0, max_accel=0.8, max_yaw_rate=1.0, max_yaw_accel=2.0)
    traj = plan_trajectory(b.map, b.free_space(0.3), mp, 30.0, np.random.default_rng(2))
    ic = cfg.sensors.imu
    ic.clock_offset_sigma = ic.stamp_jitter = 0.0
    ic.gyro_bias_sigma = ic.accel_bias_sigma = ic.gyro_bias_rw = ic.accel_bias_rw = ic.scale_sigma = 0.0
    ic.mount.x, ic.mount.y = 0.1, -0.05  # lever arm
    T = 30.0
    for noisy in (False, True):
        if not noisy:
            ic.gyro_noise_density = ic.accel_noise_density = (0.0, 0.0)
        else:
            ic.gyro_noise_density, ic.accel_noise_density = (2e-4, 2e-4), (2e-3, 2e-3)
        st = simulate_imu(ic, traj, T, np.random.default_rng(3))
        t = st.timing.t
        gt = traj.sample(t)
        dt = np.diff(t)
        yaw = gt.pose[0, 2] + np.concatenate([[0], np.cumsum(0.5 * (st.gyro[1:, 2] + st.gyro[:-1, 2]) * dt)])
        # remove the lever arm with the measured rates, rotate to the world and integrate twice
        w, al = st.gyro[:, 2], np.gradient(st.gyro[:, 2], t)
        ax = st.accel[:, 0] + al * ic.mount.y + w * w * ic.mount.x
        ay = st.accel[:, 1] - al * ic.mount.x + w * w * ic.mount.y
        c, s = np.cos(yaw), np.sin(yaw)
        aw = np.stack([c * ax - s * ay, s * ax + c * ay], 1)
        vel = gt.vel[0] + np.concatenate([[[0, 0]], np.cumsum(0.5 * (aw[1:] + aw[:-1]) * dt[:, None], 0)])
        pos = gt.pose[0, :2] + np.concatenate([[[0, 0]], np.cumsum(0.5 * (vel[1:] + vel[:-1]) * dt[:, None], 0)])
        yaw_err = np.abs(np.angle(np.exp(1j * (yaw - gt.pose[:, 2])))).max()
        pos_err = np.linalg.norm(pos - gt.pose[:, :2], axis=1).max()
        assert np.allclose(st.accel[:, 2], ic.gravity, atol=6 * st.accel_sigma + 1e-9)
        if not noisy:
            assert yaw_err < 1e-3 and pos_err < 0.05, (yaw_err, pos_err)
        else:
            # 4 sigma of the integrated white noise: yaw random walk nd*sqrt(T); position ~ nd*T^1.5/sqrt(3)
            # plus the yaw error's effect on a ~1 m/s^2 acceleration, plus the discretisation allowance
            gy = 4 * 2e-4 * math.sqrt(T)
            assert yaw_err < gy + 1e-3, yaw_err
            assert pos_err < 4 * 2e-3 * T ** 1.5 / math.sqrt(3) + gy * T * 1.0 * T / 2 + 0.05, pos_err


# ------------------------------------------------------------------------------------------------ motion
@pytest.mark.parametrize('family', list(FAMILY_SIZES))
def test_trajectories_stay_in_free_space(family):
    cfg = ScenarioConfig(duration=20.0)
    cfg.building.families = (family,)
    cfg.motion.kidnap_prob = 1.0
    cfg.motion.kidnap_interval = 5.0
    b = generate_building(cfg.building, rng_for(21, 'building'), cfg.motion.robot_radius)
    from flm_core.datagen.motion import draw_motion_params, navigable

    rng = rng_for(21, 'motion')
    mp = draw_motion_params(cfg.motion, rng, 20.0)
    free = b.free_space(cfg.motion.robot_radius + 0.05)
    traj = plan_trajectory(b.map, free, mp, 20.0, rng)
    t = np.arange(0, traj.end_time, 0.01)
    s = traj.sample(t)
    clear = b.free_space(cfg.motion.robot_radius)  # the planner kept 5 cm more than this
    cr = b.map.world_to_cell(s.pose[:, :2])
    assert clear[cr[:, 1], cr[:, 0]].all()
    speed = np.linalg.norm(s.vel, axis=1)
    assert speed.max() <= mp.max_speed + 1e-9 and np.abs(s.yaw_rate).max() <= mp.max_yaw_rate + 1e-9
    jumps = np.linalg.norm(np.diff(s.pose[:, :2], axis=0), axis=1) > 0.05
    assert jumps.sum() <= len(traj.kidnaps)
    assert len(traj.kidnaps) >= 1
    if mp.robot == 'diff_drive':  # no sideways motion
        assert np.abs(s.body_velocity()[:, 1]).max() < 1e-6
    assert navigable(free).any()


def test_building_families_differ():
    stats = {}
    for fam in FAMILY_SIZES:
        b = generate_building(BuildingConfig(families=(fam,)), rng_for(2, 'building'))
        occ = b.solid()[b.inside | b.solid()].mean()
        stats[fam] = (len(b.walls), len(b.boxes), occ, b.ceiling)
        assert b.map.grid.dtype == np.int8 and set(np.unique(b.map.grid)) <= {-1, 0, 100}
    assert stats['warehouse'][3] > stats['office'][3]
    assert stats['office'][0] > stats['hall'][0]


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize('mutate,name', [
    (lambda c: setattr(c.sensors.imu, 'rate', -5.0), 'sensors.imu.rate'),
    (lambda c: setattr(c.sensors.lidar2d, 'rate', 0.0), 'sensors.lidar2d.rate'),
    (lambda c: setattr(c.sensors.lidar2d, 'beams', 50), 'sensors.lidar2d.beams'),
    (lambda c: setattr(c.building, 'size_x', (1.0, 2.0)), 'building.size_x'),
    (lambda c: setattr(c.motion, 'robot_radius', 3.0) or setattr(c.building, 'size_x', (10.0, 12.0)),
     'building.size_x'),
    (lambda c: setattr(c, 'duration', -1.0), 'duration'),
    (lambda c: setattr(c.building, 'families', ('castle',)), 'building.families'),
    (lambda c: setattr(c.sensors.uwb, 'dropout', 1.5), 'sensors.uwb.dropout'),
])
def test_impossible_parameters_name_the_parameter(mutate, name):
    cfg = ScenarioConfig()
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        cfg.validate()
    assert str(e.value).startswith(name), str(e.value)


def test_evaluation_seeds_reserved():
    assert list(check_training_seeds(0, 3)) == [0, 1, 2]
    with pytest.raises(SeedError, match='seed.*reserved evaluation'):
        check_training_seeds(EVAL_SEED_MIN - 2, 5)
    with pytest.raises(SeedError):
        check_training_seeds(EVAL_SEED_MAX, 1)
    check_training_seeds(EVAL_SEED_MAX + 1, 10)
    ev = evaluation_seeds(3)
    assert ev[0] == EVAL_SEED_MIN and len(ev) == 3


def test_config_roundtrip():
    cfg = small_cfg(5.0, lidar3d=True)
    d = cfg.to_dict()
    cfg2 = ScenarioConfig.from_dict(d)
    assert cfg2.to_dict() == d
    with pytest.raises(ConfigError, match='sensors.imu.ratee'):
        ScenarioConfig.from_dict({'sensors': {'imu': {'ratee': 3}}})


def test_lidar_glass_and_dark_misses():
    b = box_room([[7.1, 0.2, 7.1, 9.8, 0.1, MAT['glass'], 3.0]])
    rc = Raycaster.from_building(b)
    bb = _Builder(MotionParams())
    bb.add(HOLD, np.array([3.0, 5.0, 0.0]), (1.0, 0.0), 0.0, 0.0, dur=5.0)
    cfg = ScenarioConfig().sensors.lidar2d
    cfg.glass_miss_prob, cfg.missing_prob, cfg.dropout = 1.0, 0.0, 0.0
    st = simulate_lidar2d(cfg, bb.build(()), rc, None, 1.0, np.random.default_rng(0))
    ahead = np.abs(st.angles) < 0.3  # these beams hit the glass wall 4 m ahead
    assert np.all(np.isposinf(st.ranges[:, ahead]))
    assert np.all(np.isfinite(st.ranges[:, ~ahead & (np.abs(st.angles) > 1.2)]))


def test_3d_lidar_and_depth_camera():
    sc = generate_scenario(small_cfg(1.0, lidar3d=True, depth=True), 6)
    l3, dp = sc.streams['lidar3d'], sc.streams['depth']
    pc = next(l3.measurements())
    assert pc.height == 16 and pc.xyz.shape == (16 * 360, 3) and pc.finite().mean() > 0.5
    assert np.nanmax(np.linalg.norm(pc.xyz, axis=1)) <= 30.0
    im = next(dp.measurements())
    assert im.encoding == '32FC1' and im.data.shape == (48, 64)
    dm = im.depth_m()
    assert np.isfinite(dm).mean() > 0.3 and np.nanmax(dm) <= 8.0
