"""The likelihood-field Monte Carlo localization (flm_core.estimation.mcl): the distance field and beam weights, the
motion models, KLD resampling and clusters, the sideways-motion detector, and the whole filter tracking on a
generated rosbag through flm-eval's replay (and deterministic for a seed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from flm_core.estimation.mcl import NAV2_DEFAULTS, TUNED, TUNING_NOTES, LikelihoodFieldMcl, convert_scan
from flm_core.estimation.mcl.likelihood_field import LikelihoodField, select_beams
from flm_core.estimation.mcl.motion import LateralMotionDetector, sample_differential, sample_omni
from flm_core.estimation.mcl.particle_filter import ParticleSet, cluster_labels, kld_limit, set_stats
from flm_core.estimation.mcl.params import full_params
from flm_core.geometry import se2_compose, se2_inverse, wrap_angle
from flm_core.measurements import LaserScan2D
from flm_core.site import OccupancyMap

RES = 0.05


def wall_map() -> OccupancyMap:
    """10 m x 6 m, free, with one occupied column of cells at x in [5.0, 5.05) (cell i = 100), origin (-1, -2)."""
    g = np.zeros((120, 200), np.int8)
    g[:, 100] = 100
    return OccupancyMap(g, RES, np.array([-1.0, -2.0, 0.0]))


# --------------------------------------------------------------------------------------------- parameters
def test_nav2_defaults_and_tuning_notes() -> None:
    d = NAV2_DEFAULTS
    assert d['laser_model_type'] == 'likelihood_field' and d['laser_likelihood_max_dist'] == 2.0
    assert (d['sigma_hit'], d['z_hit'], d['z_rand'], d['max_beams']) == (0.2, 0.5, 0.5, 60)
    assert (d['min_particles'], d['max_particles'], d['pf_err'], d['pf_z']) == (500, 2000, 0.05, 0.99)
    assert all(d[f'alpha{k}'] == 0.2 for k in range(1, 6))
    assert (d['update_min_d'], d['update_min_a'], d['resample_interval']) == (0.25, 0.2, 1)
    assert d['recovery_alpha_slow'] == d['recovery_alpha_fast'] == 0.0 and d['do_beamskip'] is False
    changed = {k for k in TUNED if TUNED[k] != d[k]}
    noted = ' '.join(TUNING_NOTES)
    for k in changed:
        assert (k[:-1] + '1-5' if k.startswith('alpha') else k.rsplit('_', 1)[0]) in noted, k
    with pytest.raises(ValueError, match='unknown AMCL parameter'):
        full_params({'alpha9': 1.0})
    with pytest.raises(ValueError, match='max_beams'):
        full_params({'max_beams': 1})
    with pytest.raises(ValueError, match='robot'):
        LikelihoodFieldMcl(wall_map(), robot='tank')
    with pytest.raises(ValueError, match='likelihood_field'):
        LikelihoodFieldMcl(wall_map(), params={'laser_model_type': 'beam'})


# --------------------------------------------------------------------------------------------- likelihood field
def test_distance_field_nav2_cells_and_ros_cells() -> None:
    occ = wall_map()
    lf = LikelihoodField(occ, 2.0)                       # nav2: cell i centred on origin + i * res
    # the wall cell's centre is at x = -1 + 100 * 0.05 = 4.0 for nav2 (4.025 in the ROS convention)
    x = np.array([4.0, 4.5, 3.0, 1.0, -0.5])
    got = lf.distance_at(np.stack([x, np.zeros_like(x)], 1))
    np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 2.0, 2.0], atol=1e-6)      # capped at max_dist
    assert lf.distance_at(np.array([[50.0, 0.0]]))[0] == 2.0                  # off the map: the cap
    ros = LikelihoodField(occ, 2.0, half_cell_fix=True)
    assert ros.distance_at(np.array([[4.04, 0.0]]))[0] == 0.0
    assert ros.distance_at(np.array([[3.99, 0.0]]))[0] == pytest.approx(RES)
    assert lf.distance_at(np.array([[3.99, 0.0]]))[0] == 0.0                   # rounds into the wall cell
    with pytest.raises(ValueError, match='yaw'):
        LikelihoodField(OccupancyMap(occ.grid, RES, np.array([0.0, 0.0, 0.3])), 2.0)


def test_beam_selection_as_nav2() -> None:
    assert list(select_beams(360, 60)) == list(range(0, 360, 6))
    assert list(select_beams(10, 60)) == list(range(10))
    assert len(select_beams(181, 60)) == 61


def test_scan_weights_match_the_formula_per_particle() -> None:
    """The vectorised weights equal nav2's formula evaluated beam by beam, particle by particle."""
    lf = LikelihoodField(wall_map(), 2.0)
    rng = np.random.default_rng(3)
    poses = np.column_stack([rng.uniform(0, 4, 50), rng.uniform(-1, 3, 50), rng.uniform(-3, 3, 50)])
    ranges = np.array([1.0, 2.5, np.nan, 30.0, 4.2, 0.7, 20.0])
    bearings = np.linspace(-1.0, 1.2, len(ranges))
    laser = (0.2, -0.1)
    z_hit, z_rand, sigma, rmax = 0.5, 0.5, 0.2, 20.0
    got = lf.scan_weights(poses, ranges, bearings, laser, rmax, z_hit, z_rand, sigma)
    for k, (x, y, th) in enumerate(poses):
        lx, ly = x + math.cos(th) * laser[0] - math.sin(th) * laser[1], y + math.sin(th) * laser[0] + \
            math.cos(th) * laser[1]
        p = 1.0
        for r, b in zip(ranges, bearings):
            if not r < rmax:                              # max range and NaN are skipped
                continue
            end = np.array([[lx + r * math.cos(th + b), ly + r * math.sin(th + b)]])
            d = float(lf.distance_at(end)[0])
            pz = z_hit * math.exp(-d * d / (2 * sigma * sigma)) + z_rand / rmax
            p += pz ** 3
        assert got[k] == pytest.approx(p, rel=1e-6)
    # a pose whose beams end on the wall weighs more than one whose beams end in free space
    hit = lf.scan_weights(np.array([[3.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), np.array([1.0, 1.0]), np.array([0.0, 0.0]),
                          (0.0, 0.0), rmax, z_hit, z_rand, sigma)
    assert hit[0] == pytest.approx(1 + 2 * (z_hit + z_rand / rmax) ** 3, rel=1e-6) and hit[1] < 1.001


def test_scan_conversion_as_nav2() -> None:
    m = LaserScan2D(stamp=1.0, frame_id='laser', angles=np.array([-0.5, 0.0, 0.5], np.float32),
                    ranges=np.array([0.05, np.nan, 150.0], np.float32), range_min=0.1, range_max=120.0)
    s = convert_scan(m, (0.3, 0.1, 0.2, 0.25), NAV2_DEFAULTS)
    assert s.range_max == 100.0                               # laser_max_range caps the scan's own
    np.testing.assert_allclose(s.ranges, [100.0, 100.0, 150.0])  # short and NaN -> range_max; long kept (skipped)
    np.testing.assert_allclose(s.bearings, [-0.25, 0.25, 0.75], atol=1e-6)
    assert s.laser_xy == (0.3, 0.1)


# --------------------------------------------------------------------------------------------- motion models
@pytest.mark.parametrize('sample', [sample_differential, sample_omni])
def test_motion_models_without_noise_apply_the_odometry_displacement(sample) -> None:
    """With all alphas 0 every particle moves by the odometry displacement in its own frame - forward, backward,
    sideways and turning."""
    rng = np.random.default_rng(0)
    poses = np.array([[1.0, 2.0, 0.3], [-4.0, 0.5, -2.9], [0.0, 0.0, 3.1]])
    old = np.array([5.0, -1.0, 1.2])
    for rel in ([0.3, 0.0, 0.1], [-0.2, 0.0, 0.0], [0.05, 0.25, -0.4], [0.0, 0.0, 0.6], [0.2, -0.3, 3.0]):
        if sample is sample_differential and abs(rel[1]) > 0 and math.hypot(rel[0], rel[1]) < 0.01:
            continue
        new = se2_compose(old, np.array(rel))
        got = sample(poses, old, new, (0.0,) * 5, rng)
        want = se2_compose(poses, np.broadcast_to(se2_compose(se2_inverse(old), new), poses.shape))
        np.testing.assert_allclose(got[:, :2], want[:, :2], atol=1e-9)
        np.testing.assert_allclose(wrap_angle(got[:, 2] - want[:, 2]), 0.0, atol=1e-9)


def test_motion_noise_follows_nav2s_formulas() -> None:
    """Spread of the sampled poses: differential forward motion (rot1 = 0: translation sd sqrt(a3) t, heading sd
    sqrt(2 a2) t), and sideways motion, where the differential model's +-90 deg rot1 costs ~sqrt(a1) pi/2 of
    heading noise per update while the omni model's stays sqrt(a2) t."""
    rng = np.random.default_rng(1)
    N, a = 200_000, (0.2,) * 5
    zero = np.zeros((N, 3))
    fwd = sample_differential(zero, np.zeros(3), np.array([0.25, 0.0, 0.0]), a, rng)
    assert np.std(fwd[:, 0]) == pytest.approx(math.sqrt(0.2) * 0.25, rel=0.03)
    assert np.std(fwd[:, 2]) == pytest.approx(math.sqrt(2 * 0.2) * 0.25, rel=0.03)
    side = np.array([0.0, 0.25, 0.0])
    diff = sample_differential(zero, np.zeros(3), side, a, rng)
    omni = sample_omni(zero, np.zeros(3), side, a, rng)
    assert np.std(omni[:, 2]) == pytest.approx(math.sqrt(0.2) * 0.25, rel=0.03)
    assert np.std(diff[:, 2]) > 5 * np.std(omni[:, 2])
    np.testing.assert_allclose(np.mean(omni[:, :2], axis=0), [0.0, 0.25], atol=0.003)
    assert np.std(omni[:, 0]) == pytest.approx(math.sqrt(0.2) * 0.25, rel=0.03)   # strafe sd sqrt(a5) t


def test_lateral_motion_detector() -> None:
    arc = LateralMotionDetector()
    pose = np.zeros(3)
    for _ in range(300):                                   # 3 m of a diff drive's arc, no twist: never sideways
        pose = se2_compose(pose, np.array([0.01 * math.cos(0.005), 0.01 * math.sin(0.005), 0.01]))
        assert not arc.add(pose, 0.0)
    side = LateralMotionDetector()
    pose = np.zeros(3)
    for k in range(100):                                   # crab walk without twist: found from the poses
        pose = se2_compose(pose, np.array([0.01, 0.01, 0.0]))
        if side.add(pose, 0.0):
            break
    assert side.holonomic and 0.5 < 0.01 * math.sqrt(2) * (k + 1) < 0.6 and 'sideways' in side.reason
    twist = LateralMotionDetector()
    assert not twist.add(np.zeros(3), 0.04) and twist.add(np.zeros(3), -0.2)


# --------------------------------------------------------------------------------------------- particle set
def test_kld_limit() -> None:
    assert kld_limit(1, 0.05, 0.99, 500, 2000) == 2000
    k = 60
    b = 2 / (9 * (k - 1))
    want = math.ceil((k - 1) / (2 * 0.05) * (1 - b + math.sqrt(b) * 0.99) ** 3)
    assert kld_limit(k, 0.05, 0.99, 500, 2000) == want and 500 < want < 2000
    assert kld_limit(3, 0.05, 0.99, 500, 2000) == 500 and kld_limit(1000, 0.05, 0.99, 500, 2000) == 2000


def test_resampling_adapts_the_particle_count_and_draws_by_weight() -> None:
    rng = np.random.default_rng(4)
    pf = ParticleSet(500, 2000, 0.05, 0.99, 0.0, 0.0, rng)
    pf.init_gaussian(np.array([1.0, 2.0, 0.5]), np.diag([1e-4, 1e-4, 1e-4]))
    assert len(pf.poses) == 2000
    assert pf.resample() == 501                            # a few bins: stops at the first count over the minimum
    pf.init_gaussian(np.array([1.25, 2.25, 0.6]), np.diag([1e-6, 1e-6, 1e-6]))
    assert pf.resample() == 2000                           # one bin: nav2's bound is the maximum (k <= 1)
    pf.init_gaussian(np.array([1.0, 2.0, 0.5]), np.diag([4.0, 4.0, 1.0]))
    assert pf.resample() > 1500                            # hundreds of bins: towards the maximum
    pf.init_gaussian(np.zeros(3), np.diag([1e-4, 1e-4, 1e-4]))
    pf.poses[:1000, 0] += 10.0                             # two places; the far one has all the weight
    pf.weigh(np.where(pf.poses[:, 0] > 5, 9.0, 1e-9))
    pf.resample()
    assert np.all(pf.poses[:, 0] > 5) and np.allclose(pf.weights, 1.0 / len(pf.poses))


def test_clusters_and_statistics() -> None:
    rng = np.random.default_rng(5)
    a = np.column_stack([rng.normal(0, 0.2, 300), rng.normal(0, 0.2, 300), rng.normal(math.pi - 0.05, 0.1, 300)])
    b = np.column_stack([rng.normal(5, 0.1, 100), rng.normal(5, 0.1, 100), rng.normal(0, 0.05, 100)])
    poses = np.concatenate([a, b])
    labels = cluster_labels(poses)
    assert len(set(labels[:300])) == 1 and len(set(labels[300:])) == 1 and labels[0] != labels[-1]
    st = set_stats(poses, np.ones(400))
    assert st.clusters == 2 and st.weight == pytest.approx(0.75)
    np.testing.assert_allclose(st.pose[:2], a[:, :2].mean(axis=0), atol=1e-9)
    assert abs(float(wrap_angle(st.pose[2] - (math.pi - 0.05)))) < 0.02      # circular mean across +-pi
    assert st.cov[0, 0] == pytest.approx(np.var(poses[:, 0]), rel=1e-9)
    wrapped = poses.copy()
    wrapped[:300, 2] = wrap_angle(wrapped[:300, 2] + 0.1)                   # straddles +-pi: still one cluster
    assert set_stats(wrapped[:300], np.ones(300)).cov[2, 2] < 0.05


# --------------------------------------------------------------------------------------------- the whole filter
@pytest.fixture(scope='module')
def holonomic_bag(tmp_path_factory):
    """A generated 40 s cluttered building with a holonomic robot, written as a rosbag2 (mcap) + site file."""
    from flm_core.datagen import ScenarioConfig, generate_scenario, write_bag
    from flm_core.datagen.config import BuildingConfig

    cfg = ScenarioConfig(duration=40.0, building=BuildingConfig(families=('cluttered',)))
    cfg.motion.robots = ('holonomic',)
    cfg.motion.kidnap_prob = 0.0
    sc = generate_scenario(cfg, 77)
    d = tmp_path_factory.mktemp('mcl_bag')
    return write_bag(sc, d, storage='mcap'), d / 'site.yaml'


def replay(bag, site_path, kind: str, seed: int | None = None):
    """flm-eval's offline replay of one AMCL variant from the true initial pose -> (Evaluation, baseline)."""
    from flm_core.evaluation.report import evaluate
    from flm_core.site import load_site
    from flm_ros import evaluate as ev
    from flm_ros import params as P
    from flm_ros.bringup import default_params_file

    p = P.from_yaml(str(default_params_file()), 'flm_localizer', ev.TABLE)
    site = load_site(site_path)
    gt = ev.replay_ground_truth(bag, p, '/ground_truth/pose').gt
    made = []
    factory = ev._baseline(kind)['baseline']

    def make(site, mounts):
        b = factory(site, mounts)
        if seed is not None:
            b.rng = np.random.default_rng(seed)
        made.append(b)
        return b

    r = ev.replay_offline(bag, site, p, '/ground_truth/pose', progress=False, initial_pose=gt.poses[0], baseline=make)
    return evaluate(kind, r.est, gt), made[0]


def test_lf_mcl_tracks_a_generated_bag_with_nav2_defaults(holonomic_bag) -> None:
    """Nav2's default AMCL (likelihood field) from the true initial pose through flm-eval's replay of a bag: the
    holonomic robot is recognised from its odometry (the omni model), the laser mount comes from /tf_static, the
    APE RMSE stays under 0.3 m; measured 0.21 m (the beam model: 0.09 m, test_baselines_amcl.py)."""
    e, b = replay(*holonomic_bag, 'amcl-lf')
    ape = e.metrics['ape_m']
    assert e.metrics['matched'] > 350
    assert ape['rmse'] < 0.3 and ape['max'] < 0.7, ape
    d = b.diagnostics()
    assert d['motion_model'] == 'holonomic' and d['updates'] >= 30
    assert b.extrinsics['laser'][0] == pytest.approx(0.1)
    assert np.all(np.isfinite(e.est.cov)) and np.all(e.est.cov[:, 0, 0] > 0)


def test_lf_mcl_is_deterministic_for_a_seed() -> None:
    from flm_core.datagen import ScenarioConfig, generate_scenario
    from flm_core.estimation.harness import run_baseline, scenario_extrinsics, scenario_messages

    cfg = ScenarioConfig(duration=12.0)
    cfg.building.families = ('office',)
    cfg.motion.kidnap_prob = 0.0
    cfg.motion.robots = ('diff_drive',)
    sc = generate_scenario(cfg, 51)
    eval_t = np.arange(0.5, 12.0, 0.1)
    start = (0.0, sc.trajectory.sample(np.array([0.0])).pose[0], np.diag([0.1, 0.1, 0.05]) ** 2)

    def run(seed: int) -> np.ndarray:
        b = LikelihoodFieldMcl(sc.site().map, scenario_extrinsics(sc), robot='diff_drive', seed=seed)
        return run_baseline(b, scenario_messages(sc, ('odom', 'lidar2d')), eval_t, start).pose

    a, b, c = run(7), run(7), run(8)
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    gt = sc.trajectory.sample(eval_t).pose
    assert np.sqrt(np.mean(np.sum((a[:, :2] - gt[:, :2]) ** 2, axis=1))) < 0.3
