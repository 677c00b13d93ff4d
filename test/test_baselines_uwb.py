"""UWB baseline: converges from a perturbed start and tracks; gated fixes after a wrong re-initialisation are
counted and lead to a relocalization on the UWB position."""
from __future__ import annotations

import numpy as np
import pytest

from flm_core.datagen import ScenarioConfig, generate_scenario
from flm_core.estimation.baselines import UwbBaseline
from flm_core.estimation.harness import perturbed_start, run_baseline, scenario_extrinsics, scenario_messages


@pytest.fixture(scope='module')
def scenario():
    cfg = ScenarioConfig(duration=12.0)
    cfg.building.families = ('hall',)
    cfg.building.size_x = (15.0, 18.0)
    cfg.building.size_y = (12.0, 14.0)
    cfg.anchors.count = (6, 6)
    cfg.anchors.layouts = ('corners',)
    cfg.sensors.lidar2d.enabled = False
    cfg.motion.kidnap_prob = 0.0
    return generate_scenario(cfg, 41)


def test_uwb_baseline_converges_and_tracks(scenario) -> None:
    b = UwbBaseline(scenario.site(), scenario_extrinsics(scenario))
    eval_t = np.arange(0.5, scenario.config.duration, 0.1)
    gt = scenario.trajectory.sample(eval_t).pose
    p0, c0 = perturbed_start(scenario.trajectory.sample(np.array([0.0])).pose[0], np.random.default_rng(3))
    r = run_baseline(b, scenario_messages(scenario, ('imu', 'odom', 'uwb')), eval_t, (0.0, p0, c0))
    err = np.hypot(r.pose[:, 0] - gt[:, 0], r.pose[:, 1] - gt[:, 1])
    late = eval_t > 3.0
    assert np.sqrt(np.mean(err[late] ** 2)) < 0.25, np.sqrt(np.mean(err[late] ** 2))
    assert err[late].max() < 0.6
    counts = r.diagnostics['filter']['uwb']
    assert counts['accepted'] > 80


def test_uwb_gating_and_relocalization(scenario) -> None:
    """Start 4 m off with a confident covariance: the UWB fixes are gated out (and counted) until the run of
    rejections re-initialises the filter on the UWB position; it then tracks."""
    b = UwbBaseline(scenario.site(), scenario_extrinsics(scenario))
    eval_t = np.arange(0.5, scenario.config.duration, 0.1)
    gt = scenario.trajectory.sample(eval_t).pose
    start = scenario.trajectory.sample(np.array([0.0])).pose[0] + np.array([4.0, 0.0, 0.0])
    r = run_baseline(b, scenario_messages(scenario, ('imu', 'odom', 'uwb')), eval_t,
                     (0.0, start, np.diag([0.05, 0.05, 0.02]) ** 2))
    assert b.filter.rejections('uwb') >= b.config.relocalize_after
    assert r.diagnostics['relocalizations'] == 1
    err = np.hypot(r.pose[:, 0] - gt[:, 0], r.pose[:, 1] - gt[:, 1])
    assert err[0] > 3.0
    assert err[eval_t > 6.0].max() < 0.6
