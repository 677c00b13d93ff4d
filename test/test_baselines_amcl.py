"""Nav2 AMCL through the optional PyPI ``amcl`` package: converges from a perturbed start and tracks; the package is
never imported by ``import flm_core`` or the estimation modules."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from flm_core.estimation.amcl_baseline import NAV2_DEFAULTS, TUNED, TUNING_NOTES, AmclBaseline, amcl_available
from flm_core.estimation.harness import perturbed_start, run_baseline, scenario_extrinsics, scenario_messages

needs_amcl = pytest.mark.skipif(not amcl_available(), reason='optional benchmark-only package "amcl" (GPLv3) is '
                                                             'not installed: pip install amcl')


def test_importing_flm_core_does_not_import_amcl() -> None:
    code = ('import sys, flm_core, flm_core.estimation, flm_core.estimation.baselines, '
            'flm_core.estimation.harness, flm_core.estimation.amcl_baseline; '
            'assert "amcl" not in sys.modules, "amcl imported"; print("ok")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr


def test_parameter_sets_are_documented() -> None:
    assert NAV2_DEFAULTS['alpha1'] == 0.2 and NAV2_DEFAULTS['min_particles'] == 500
    assert NAV2_DEFAULTS['max_particles'] == 2000 and NAV2_DEFAULTS['laser_model_type'] == 'likelihood_field'
    assert NAV2_DEFAULTS['update_min_d'] == 0.25 and NAV2_DEFAULTS['update_min_a'] == 0.2
    changed = {k for k in TUNED if TUNED[k] != NAV2_DEFAULTS[k]}
    noted = {p for key in TUNING_NOTES for p in (key.split('/') if '/' in key else [key])}
    for k in changed:
        base = k[:-1] + '1-5' if k.startswith('alpha') else k
        assert base in noted or any(k.startswith(n.rstrip('_da')) for n in noted), k
    with pytest.raises(ValueError, match='unknown AMCL parameter'):
        if amcl_available():
            from flm_core.site import OccupancyMap
            AmclBaseline(OccupancyMap(np.zeros((10, 10), np.int8), 0.05), params={'alpha9': 1.0})
        else:
            raise ValueError('unknown AMCL parameter')


@pytest.fixture(scope='module')
def scenario():
    from flm_core.datagen import ScenarioConfig, generate_scenario

    cfg = ScenarioConfig(duration=15.0)
    cfg.building.families = ('office',)
    cfg.building.size_x = (16.0, 18.0)
    cfg.building.size_y = (12.0, 14.0)
    cfg.sensors.uwb.enabled = False
    cfg.motion.kidnap_prob = 0.0
    cfg.motion.robots = ('diff_drive',)
    return generate_scenario(cfg, 51)


@needs_amcl
@pytest.mark.parametrize('params', ['defaults', 'tuned'])
def test_amcl_converges_and_tracks(scenario, params: str) -> None:
    b = AmclBaseline(scenario.site().map, scenario_extrinsics(scenario), TUNED if params == 'tuned' else None,
                     robot=scenario.motion.robot)
    eval_t = np.arange(0.5, scenario.config.duration, 0.1)
    gt = scenario.trajectory.sample(eval_t).pose
    p0, c0 = perturbed_start(scenario.trajectory.sample(np.array([0.0])).pose[0], np.random.default_rng(2))
    r = run_baseline(b, scenario_messages(scenario, ('odom', 'lidar2d')), eval_t, (0.0, p0, c0))
    assert np.all(np.isfinite(r.pose))
    err = np.hypot(r.pose[:, 0] - gt[:, 0], r.pose[:, 1] - gt[:, 1])
    yaw = np.degrees(np.abs(np.angle(np.exp(1j * (r.pose[:, 2] - gt[:, 2])))))
    late = eval_t > 5.0
    assert np.sqrt(np.mean(err[late] ** 2)) < 0.2, np.sqrt(np.mean(err[late] ** 2))
    assert err[late].max() < 0.4
    assert np.sqrt(np.mean(yaw[late] ** 2)) < 6.0
    assert r.diagnostics['updates'] >= 10 and len(r.update_ms) == r.diagnostics['updates']
