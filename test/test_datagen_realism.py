"""flm_core.datagen realism: each dimension is really in the generated data (arrays, bags, site files), deterministic
per seed, on for evaluation seeds by default and off for training seeds; scan-to-map ICP leaves millimetres on a
mapped map."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from scipy import ndimage

from flm_core.datagen import ConfigError, ScenarioConfig, generate_scenario, write_bag, write_shard
from flm_core.datagen.bagwriter import BAG_EPOCH
from flm_core.datagen.buildings import MAT, build_from_plan
from flm_core.datagen.motion import HOLD, MotionParams, _Builder
from flm_core.datagen.platform import rot_ypr
from flm_core.datagen.raycast import Raycaster, glassless_raycaster
from flm_core.datagen.seeds import EVAL_SEED_MIN
from flm_core.datagen.sensors.lidar import simulate_lidar2d
from flm_core.datagen.shards import iter_windows, load_shard
from flm_core.site import load_site

TRAIN_SEED, EVAL_SEED = 31, EVAL_SEED_MIN + 31


def small(duration: float = 4.0, family: str = 'office', apply: str = 'always') -> ScenarioConfig:
    cfg = ScenarioConfig(duration=duration, window=2.0, stride=2.0)
    cfg.building.families = (family,)
    cfg.building.size_x, cfg.building.size_y = (16.0, 18.0), (12.0, 14.0)
    cfg.motion.kidnap_prob = 0.0
    cfg.realism.apply = apply
    return cfg


def all_habits(cfg: ScenarioConfig) -> ScenarioConfig:
    """Every per-scenario habit on (probabilities 1)."""
    h = cfg.realism.habits
    h.coplanar_anchor_prob = h.tilt_prob = h.imu_z_down_prob = h.tag_height_prob = 1.0
    h.tilt_max = (0.08, 0.08)
    h.tag_height_hz = 1.0
    h.coplanar_height = (2.5, 2.5)          # well above the tag at times: its height shows in the ranges
    cfg.anchors.count = (6, 8)
    return cfg


def endpoints(sc, st) -> tuple[np.ndarray, np.ndarray]:
    """World xyz (S, B, 3) of every 2D scan beam's return (NaN where none), computed independently of the
    simulator from the true 3D pose (yaw, and roll/pitch of a tilted platform) at each scan's time; and t (S,)."""
    t = st.timing.t
    gt = sc.trajectory.sample(t)
    roll, pitch = sc.habits.tilt.angles(t) if sc.habits is not None and sc.habits.tilt is not None else (0 * t, 0 * t)
    R = rot_ypr(gt.pose[:, 2], pitch, roll)                                          # (S, 3, 3)
    m = sc.config.sensors.lidar2d.mount
    o = np.column_stack([gt.pose[:, :2], np.zeros(len(t))]) + R @ np.array([m.x, m.y, m.z])
    a = st.angles.astype(np.float64) + m.yaw
    d = np.einsum('sij,bj->sbi', R, np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], -1))
    r = np.where(np.isfinite(st.ranges), st.ranges, np.nan)
    return o[:, None, :] + r[..., None] * d, t


def dist_to(grid_occ: np.ndarray, om, xy: np.ndarray) -> np.ndarray:
    """Metres from points xy (..., 2) to the nearest cell of grid_occ (H, W) on map om."""
    d = ndimage.distance_transform_edt(~grid_occ) * om.resolution
    fin = np.all(np.isfinite(xy), axis=-1)
    cr = om.world_to_cell(np.where(fin[..., None], xy, 0.0))
    H, W = grid_occ.shape
    ok = fin & (cr[..., 0] >= 0) & (cr[..., 0] < W) & (cr[..., 1] >= 0) & (cr[..., 1] < H)
    return np.where(ok, d[np.clip(cr[..., 1], 0, H - 1), np.clip(cr[..., 0], 0, W - 1)], np.inf)


@pytest.fixture(scope='module')
def habits_scenario():
    cfg = all_habits(small(6.0, family='hall'))          # open space: line of sight to the anchors
    cfg.sensors.lidar3d.enabled = True
    cfg.sensors.lidar3d.beams, cfg.sensors.lidar3d.rings = 90, 8
    return generate_scenario(cfg, TRAIN_SEED)


@pytest.fixture(scope='module')
def habits_bag(habits_scenario, tmp_path_factory):
    out = tmp_path_factory.mktemp('realism')
    from rosbags.highlevel import AnyReader

    bag = write_bag(habits_scenario, out, 'mcap')
    msgs: dict[str, list] = {}
    with AnyReader([bag]) as r:
        for c, t, raw in r.messages():
            msgs.setdefault(c.topic, []).append((t, r.deserialize(raw, c.msgtype)))
    return out, msgs


def _stamp(h) -> float:
    return h.stamp.sec + h.stamp.nanosec * 1e-9 - BAG_EPOCH


# ------------------------------------------------------------------------------------------------ when it applies
def test_realism_on_for_evaluation_seeds_off_for_training_seeds():
    cfg = small(2.0, apply='evaluation')
    tr, ev = generate_scenario(cfg, TRAIN_SEED), generate_scenario(cfg, EVAL_SEED)
    assert not tr.realism and tr.mapped is None and tr.habits is None
    assert np.array_equal(tr.site().map.grid, tr.building.map.grid)       # training: the exact geometry
    assert ev.realism and ev.mapped is not None and ev.habits is not None
    assert not np.array_equal(ev.site().map.grid, ev.building.map.grid)   # evaluation: the mapped map
    assert ev.params['realism']['mapping']['keyframes'] > 10
    cfg.realism.apply = 'never'
    assert not generate_scenario(cfg, EVAL_SEED).realism
    cfg.realism.apply = 'always'
    assert generate_scenario(cfg, TRAIN_SEED).realism


def test_realism_config_is_validated_and_recorded():
    for mutate, name in [(lambda c: setattr(c.realism, 'apply', 'sometimes'), 'realism.apply'),
                         (lambda c: setattr(c.realism.mapping, 'spacing', 0.0), 'realism.mapping.spacing'),
                         (lambda c: setattr(c.realism.mapping, 'free_thresh', 0.9), 'realism.mapping.free_thresh'),
                         (lambda c: setattr(c.realism.changes, 'move_prob', 1.5), 'realism.changes.move_prob'),
                         (lambda c: setattr(c.realism.habits, 'tilt_max', (0.1, 0.9)), 'realism.habits.tilt_max'),
                         (lambda c: setattr(c.realism.habits, 'anchor_bias', (0.3, -0.1)),
                          'realism.habits.anchor_bias'),
                         (lambda c: setattr(c.sensors.lidar2d.mount, 'roll', 0.1), 'sensors.lidar2d.mount.roll')]:
        cfg = ScenarioConfig()
        mutate(cfg)
        with pytest.raises(ConfigError, match=name.replace('.', r'\.')):
            cfg.validate()
    cfg = ScenarioConfig()
    cfg.realism.habits.keyframe_interval = 3.0
    cfg.sensors.imu.mount.roll = math.pi
    back = ScenarioConfig.from_dict(cfg.to_dict()).validate()
    assert back.realism.habits.keyframe_interval == 3.0 and back.sensors.imu.mount.roll == math.pi
    assert back.realism.habits.anchor_bias == cfg.realism.habits.anchor_bias


def test_deterministic_per_seed_and_habits_independent(tmp_path):
    cfg = all_habits(small(3.0))
    digests = []
    for k in range(2):
        write_shard(generate_scenario(cfg, TRAIN_SEED), tmp_path / f's{k}.npz')
        digests.append(hashlib.sha256((tmp_path / f's{k}.npz').read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    a = generate_scenario(cfg, TRAIN_SEED)
    b = generate_scenario(cfg, TRAIN_SEED + 1)
    assert not np.array_equal(a.site().map.grid, b.site().map.grid)
    cfg2 = all_habits(small(3.0))
    cfg2.realism.habits.imu_z_down_prob = 0.0          # one habit off: the others are the same draws
    c = generate_scenario(cfg2, TRAIN_SEED)
    assert not c.habits.imu_z_down and a.habits.imu_z_down
    np.testing.assert_array_equal(a.anchors.bias, c.anchors.bias)
    np.testing.assert_array_equal(a.habits.tilt.roll.amp, c.habits.tilt.roll.amp)
    np.testing.assert_array_equal(a.site().map.grid, c.site().map.grid)


# ------------------------------------------------------------------------------------------------ map vs world
def test_mapped_map_is_a_warped_blurred_slam_map():
    sc = generate_scenario(small(2.0), TRAIN_SEED)
    site, world = sc.site(), sc.map_world
    g = site.map.grid
    assert set(np.unique(g).tolist()) == {-1, 0, 100}
    assert (g[world.inside] == -1).mean() > 0.005                     # unobserved corners, behind furniture
    mp = sc.params['realism']['mapping']
    assert 0.01 < mp['drift_rms_m'] < 0.3 and mp['occupied_cells'] == int((g == 100).sum())
    err = sc.mapped.estimated - sc.mapped.keyframes
    assert np.std(err[:, 0]) > 0.005 and np.abs(err[:, 2]).max() > 0.001  # each keyframe inserted off its pose
    surface = world.solid() & ndimage.binary_dilation(~world.solid() & world.inside)

    def wall_offset(**mapping) -> tuple[float, int]:
        cfg = small(2.0)
        for k, v in mapping.items():
            setattr(cfg.realism.mapping, k, v)
        occ = generate_scenario(cfg, TRAIN_SEED).site().map.grid == 100
        d = dist_to(surface, world.map, world.map.cell_to_world(np.argwhere(occ)[:, ::-1]))
        return float(d.mean()), int(occ.sum())

    exact = dict(drift_sigma=0.0, drift_yaw_sigma=0.0, jitter=0.0, jitter_yaw=0.0)
    d_exact, n_exact = wall_offset(**exact)
    d_drift, _ = wall_offset(**{**exact, 'drift_sigma': 0.25})
    _, n_sharp = wall_offset(**{**exact, 'blur': 0.0})
    assert d_exact < 0.04 and d_drift > 2 * d_exact, (d_exact, d_drift)  # the walls move with the SLAM drift
    assert n_exact > 1.1 * n_sharp                                       # blur thickens the walls


def test_world_changed_after_mapping_and_the_sensors_see_it():
    cfg = small(8.0)
    ch = cfg.realism.changes
    ch.move_prob, ch.remove_prob, ch.add_count = 0.5, 0.3, (3, 3)
    ch.door_closed_mapping, ch.door_closed_run = 0.0, 0.6
    sc = generate_scenario(cfg, TRAIN_SEED)
    info = sc.params['realism']['changes']
    assert info['added'] == 3 and info['moved'] >= 1 and info['removed'] >= 1 and info['doors_differ'] >= 1
    world, mapped = sc.building, sc.site().map
    # an added object: solid in the world, never occupied in the mapped map
    for box in info['added_boxes']:
        c0, r0 = world.map.world_to_cell(np.array([box[0] + 0.05, box[1] + 0.05]))
        c1, r1 = world.map.world_to_cell(np.array([box[2] - 0.05, box[3] - 0.05]))
        assert world.solid()[r0:r1 + 1, c0:c1 + 1].all()
        assert not (mapped.grid[r0:r1 + 1, c0:c1 + 1] == 100).any()
    # a door closed at run time and open when mapped: solid now, free in the map
    closed_now = world.solid() & ~sc.map_world.solid()
    assert closed_now.any() and (mapped.grid[closed_now] == 0).mean() > 0.3
    # the lidar sees what the map lacks: returns far from every mapped wall
    xyz, _ = endpoints(sc, sc.streams['lidar2d'])
    far = dist_to(mapped.grid == 100, mapped, xyz[..., :2]) > 0.3
    assert np.nanmean(np.where(np.isfinite(xyz[..., 0]), far, np.nan)) > 0.01


def test_people_are_seen_but_not_in_the_map():
    cfg = small(8.0, family='hall')
    cfg.realism.people = (3, 3)
    sc = generate_scenario(cfg, TRAIN_SEED)
    assert sc.people.count == 3
    mapped = sc.site().map
    xyz, t = endpoints(sc, sc.streams['lidar2d'])
    pp = sc.people.positions(t)                                                      # (S, P, 2)
    on_person = np.linalg.norm(xyz[:, :, None, :2] - pp[:, None], axis=-1).min(-1) < sc.people.radius + 0.1
    assert on_person.sum() > 20
    free_in_map = mapped.grid[tuple(mapped.world_to_cell(xyz[on_person][:, :2])[:, ::-1].T)] != 100
    assert free_in_map.mean() > 0.8


def test_glass_see_through_and_partial_returns():
    b = build_from_plan('test', (10.0, 10.0), 3.0, np.array([
        [0.1, 0.1, 9.9, 0.1, 0.2, MAT['concrete'], 3.0], [9.9, 0.1, 9.9, 9.9, 0.2, MAT['concrete'], 3.0],
        [9.9, 9.9, 0.1, 9.9, 0.2, MAT['concrete'], 3.0], [0.1, 9.9, 0.1, 0.1, 0.2, MAT['concrete'], 3.0],
        [7.1, 0.2, 7.1, 9.8, 0.1, MAT['glass'], 3.0]]), np.zeros((0, 7)), 0.05)
    bb = _Builder(MotionParams())
    bb.add(HOLD, np.array([3.0, 5.0, 0.0]), (1.0, 0.0), 0.0, 0.0, dur=5.0)
    cfg = ScenarioConfig().sensors.lidar2d
    cfg.glass_miss_prob, cfg.missing_prob, cfg.dropout, cfg.range_noise = 0.7, 0.0, 0.0, (0.0, 0.0)
    st = simulate_lidar2d(cfg, bb.build(()), Raycaster.from_building(b), None, 2.0, np.random.default_rng(0),
                          glass_through=glassless_raycaster(b))
    ahead = np.abs(st.angles) < 0.3
    r = st.ranges[:, ahead] * np.cos(st.angles[ahead])               # x distance from the sensor
    glass = np.isclose(r, 7.05 - 3.1, atol=0.01)                     # the glass face (sensor at x = 3.1)
    beyond = np.isclose(r, 9.8 - 3.1, atol=0.01)                     # the concrete wall behind it
    assert np.all(glass | beyond)
    assert 0.6 < beyond.mean() < 0.8                                 # ~glass_miss_prob pass, the rest return


# ------------------------------------------------------------------------------------------------ ICP on the map
def test_scan_to_map_icp_leaves_millimetres_on_a_mapped_map():
    from flm_core.estimation.baselines import IcpBaseline
    from flm_core.estimation.harness import run_baseline, scenario_extrinsics, scenario_messages
    from flm_core.estimation.icp import PointMap

    cfg = ScenarioConfig(duration=15.0)
    cfg.building.families = ('office',)
    cfg.motion.kidnap_prob = 0.0
    cfg.realism.habits.tilt_prob = 0.0                 # the same scans for both maps; only the map differs
    sc = generate_scenario(cfg, EVAL_SEED)             # realism is on for evaluation seeds by default
    assert sc.realism
    eval_t = np.arange(1.0, 14.5, 0.2)
    truth = sc.trajectory.sample(eval_t).pose
    start = (1.0, truth[0].copy(), np.diag([0.01, 0.01, 0.001]))
    ate = {}
    for name, occ in (('exact', sc.building.map), ('mapped', sc.site().map)):
        icp = IcpBaseline(PointMap.from_occupancy(occ), scenario_extrinsics(sc), use_odom=True)
        icp.use_imu = False
        r = run_baseline(icp, scenario_messages(sc, ('odom', 'lidar2d')), eval_t, start)
        ate[name] = float(np.sqrt(np.nanmean(np.sum((r.pose[:, :2] - truth[:, :2]) ** 2, axis=1))))
    print(f'scan-to-map ICP ATE on {sc.name}: exact map {ate["exact"]:.4f} m, mapped map {ate["mapped"]:.4f} m')
    assert ate['exact'] < 0.02
    assert ate['mapped'] > 0.02 and ate['mapped'] > 3 * ate['exact']


# ------------------------------------------------------------------------------------------------ UWB habits
def test_uwb_frames_share_one_stamp_in_the_bag(habits_scenario, habits_bag):
    _, msgs = habits_bag
    ids = set(habits_scenario.anchors.ids)
    frames: dict[float, list[str]] = {}
    rec: dict[float, set] = {}
    for t, m in msgs['/uwb/ranges']:
        s = round(_stamp(m.header), 9)
        frames.setdefault(s, []).append(m.header.frame_id)
        rec.setdefault(s, set()).add(t)
    assert all(set(f) <= ids and len(f) == len(set(f)) for f in frames.values())   # one Range per anchor
    sizes = np.array([len(f) for f in frames.values()])
    assert sizes.max() == len(ids) and np.mean(sizes > 1) > 0.9
    assert all(len(r) == 1 for r in rec.values())                                    # they arrive together
    u = habits_scenario.streams['uwb']
    assert len(frames) == len(np.unique(u.epoch))
    # each range was still measured at its own slot time inside the frame
    jitter = habits_scenario.config.sensors.uwb.stamp_jitter
    assert np.all(u.timing.t <= u.timing.stamp - u.timing.clock_offset + 6 * jitter)
    assert len(np.unique(u.timing.t)) == len(u.timing.t)


def test_anchor_biases_of_both_signs_constant_per_anchor(habits_scenario):
    sc = habits_scenario
    u = sc.streams['uwb']
    clean = u.los & ~u.multipath & ~u.person
    res = u.range - np.linalg.norm(u.tag - sc.anchors.positions[u.anchor], axis=1)
    seen = [a for a in range(len(sc.anchors.ids)) if (clean & (u.anchor == a)).sum() >= 5]
    assert len(seen) >= 3
    med = np.array([np.median(res[clean & (u.anchor == a)]) for a in seen])
    np.testing.assert_allclose(med, sc.anchors.bias[seen], atol=0.05)
    assert sc.anchors.bias.min() < 0 < sc.anchors.bias.max()
    lo, hi = sc.config.realism.habits.anchor_bias
    assert np.all((sc.anchors.bias >= lo) & (sc.anchors.bias <= hi))


def test_coplanar_anchors(habits_scenario, habits_bag):
    sc = habits_scenario
    z = sc.anchors.positions[:, 2]
    assert np.all(z == z[0]) and z[0] == sc.habits.coplanar_height
    site = load_site(habits_bag[0] / 'site.yaml')
    assert {a.position[2] for a in site.anchors} == {z[0]}


def test_tag_height_moves_and_is_on_tf(habits_scenario, habits_bag):
    sc = habits_scenario
    _, msgs = habits_bag
    static = {tf.child_frame_id for _, m in msgs['/tf_static'] for tf in m.transforms}
    assert 'uwb_tag' not in static
    tag = [(_stamp(tf.header), tf.transform.translation.z) for _, m in msgs['/tf'] for tf in m.transforms
           if tf.child_frame_id == 'uwb_tag']
    assert all(tf.header.frame_id == 'base_link' for _, m in msgs['/tf'] for tf in m.transforms
               if tf.child_frame_id == 'uwb_tag')
    tt, tz = np.array(tag).T
    lo, hi = sc.config.realism.habits.tag_height
    assert len(tt) == len(sc.streams['uwb'].epoch_t) and np.all((tz >= lo - 1e-9) & (tz <= hi + 1e-9))
    assert tz.max() - tz.min() > 0.1
    # the ranges agree with the tag at the height /tf says, not with a fixed mount: on the links where the two
    # heights give ranges more than 0.1 m apart
    u = sc.streams['uwb']
    gt = sc.trajectory.sample(u.timing.t)
    m = sc.config.sensors.uwb.mount
    xy = np.column_stack([gt.pose[:, 0] + np.cos(gt.pose[:, 2]) * m.x - np.sin(gt.pose[:, 2]) * m.y,
                          gt.pose[:, 1] + np.sin(gt.pose[:, 2]) * m.x + np.cos(gt.pose[:, 2]) * m.y])
    anc = sc.anchors.positions[u.anchor]
    d_tf = np.linalg.norm(np.column_stack([xy, np.interp(u.timing.t, tt, tz)]) - anc, axis=1)
    d_fixed = np.linalg.norm(np.column_stack([xy, np.full(len(xy), m.z)]) - anc, axis=1)
    sel = u.los & ~u.multipath & ~u.person & (np.abs(d_tf - d_fixed) > 0.1)
    meas = u.range - sc.anchors.bias[u.anchor]
    assert sel.sum() > 20
    err_tf, err_fixed = np.median(np.abs(meas - d_tf)[sel]), np.median(np.abs(meas - d_fixed)[sel])
    assert err_tf < 0.1 and err_fixed > 2 * err_tf, (err_tf, err_fixed)
    within = u.timing.t <= tt[-1]
    np.testing.assert_allclose(np.interp(u.timing.t, tt, tz)[within], u.tag[within, 2], atol=0.05)  # tilt: a bit


# ------------------------------------------------------------------------------------------------ platform, IMU
def test_z_down_imu_on_a_tilted_platform_rep145(habits_scenario, habits_bag):
    sc = habits_scenario
    _, msgs = habits_bag
    assert sc.habits.imu_z_down and sc.habits.tilt is not None
    imu_tf = [tf for _, m in msgs['/tf_static'] for tf in m.transforms if tf.child_frame_id == 'imu_link'][0]
    q = imu_tf.transform.rotation
    assert abs(abs(q.x) - 1.0) < 1e-9 and abs(q.w) < 1e-9                           # 180 deg about x
    st = sc.streams['imu']
    t = st.timing.t
    gt = sc.trajectory.sample(t)
    roll, pitch = sc.habits.tilt.angles(t)
    R = rot_ypr(gt.pose[:, 2], pitch, roll)
    m = sc.config.sensors.imu.mount
    Rm = rot_ypr(m.yaw, m.pitch, m.roll)
    f_world = np.einsum('nij,jk,nk->ni', R, Rm, st.accel - st.accel_bias)   # back to the map frame
    expect = np.column_stack([gt.acc, np.full(len(t), sc.config.sensors.imu.gravity)])
    err = np.abs(f_world - expect).mean(axis=0)
    assert np.all(err < 0.15), err                                         # lever arm, scale errors, noise
    assert np.mean(st.accel[:, 2]) < -9.0                                  # gravity on -z: mounted z-down
    w_world = np.einsum('nij,jk,nk->ni', R, Rm, st.gyro - st.gyro_bias)
    assert np.abs(w_world[:, 2] - gt.yaw_rate).mean() < 0.02
    assert np.corrcoef(st.gyro[:, 2], gt.yaw_rate)[0, 1] < -0.9            # the z axis points down
    assert np.abs(st.gyro[:, :2]).max() > 0.005                            # roll and pitch rates
    # ground truth carries roll and pitch
    qs = np.array([[p.pose.orientation.x, p.pose.orientation.y] for _, p in msgs['/ground_truth/pose']])
    assert np.abs(qs).max() > 0.3 * 0.5 * sc.habits.tilt_max


def test_tilted_lidar_sees_the_floor(habits_scenario):
    sc = habits_scenario
    xyz, _ = endpoints(sc, sc.streams['lidar2d'])
    z = xyz[..., 2][np.isfinite(xyz[..., 2])]
    assert np.all(z > -0.1) and np.all(z < sc.building.ceiling + 0.1)
    cfg = small(6.0, family='hall')
    cfg.realism.habits.tilt_prob = 0.0
    level = generate_scenario(cfg, TRAIN_SEED)                       # the same building, level
    assert level.habits.tilt is None
    zl = endpoints(level, level.streams['lidar2d'])[0][..., 2]
    zl = zl[np.isfinite(zl)]
    floor = np.mean(np.abs(z) < 0.05)
    assert floor > 0.01 and floor > 5 * np.mean(np.abs(zl) < 0.05)


# ------------------------------------------------------------------------------------------------ keyframe log
def test_keyframe_scans_with_gaps():
    cfg = small(40.0)
    h = cfg.realism.habits
    h.keyframe_interval, h.keyframe_gap_prob, h.keyframe_gap = 3.0, 0.3, (8.0, 12.0)
    cfg.sensors.uwb.enabled = cfg.sensors.imu.enabled = False
    sc = generate_scenario(cfg, TRAIN_SEED)
    s = sc.streams['lidar2d'].timing.stamp
    gaps = np.diff(s)
    assert 5 <= len(s) <= 40 * 2 / 3.0 + 1 and len(sc.streams['odom'].timing.t) > 1000
    assert gaps.min() > 1.5 - 0.2 and gaps.max() > 8.0 - 0.2


# ------------------------------------------------------------------------------------------------ training shards
def test_shard_with_realism(tmp_path, habits_scenario):
    write_shard(habits_scenario, tmp_path / 's.npz')
    d = load_shard(tmp_path / 's.npz')
    np.testing.assert_array_equal(d['site/grid'], habits_scenario.site().map.grid)
    np.testing.assert_array_equal(d['world/grid'], habits_scenario.building.map.grid)
    assert d['site/point_map'].shape[1] == 3 and len(d['site/point_map']) > 1000
    assert d['gt/roll_pitch'].shape == (len(d['gt/t']), 2) and d['uwb/tag'].shape == (len(d['uwb/t']), 3)
    assert d['meta']['mounts']['imu'][4] == pytest.approx(math.pi)
    assert d['meta']['params']['realism']['habits']['imu_z_down'] is True
    for w in iter_windows(d):
        assert len(w['uwb/tag']) == len(w['uwb/range']) and len(w['gt/roll_pitch']) == len(w['gt/pose'])
