"""Nav2's AMCL with the beam model through the optional GPL-3.0 PyPI ``amcl`` bindings (bench/amcl_beam.py): it
converges and tracks, agrees with the likelihood-field MCL on the same bag, and nothing under flm_core or flm_ros
imports the ``amcl`` package; ``flm-eval --compare`` names both variants and says what to install."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.amcl_beam import AmclBeamBaseline, amcl_available  # noqa: E402
from flm_core.estimation.harness import (perturbed_start, run_baseline, scenario_extrinsics,  # noqa: E402
                                         scenario_messages)
from flm_core.estimation.mcl import TUNED  # noqa: E402
from test_mcl import holonomic_bag, replay  # noqa: E402,F401 (the generated bag fixture and flm-eval's replay)

needs_amcl = pytest.mark.skipif(not amcl_available(), reason='optional benchmark-only package "amcl" (GPL-3.0) is '
                                                             'not installed: pip install -r requirements/bench.txt')
_IMPORT = re.compile(r'^\s*(import\s+amcl\b|from\s+amcl\b|.*import_module\(\s*[\'"]amcl[\'"])', re.M)


def test_installed_packages_never_import_the_gpl_bindings() -> None:
    """No module of flm_core or flm_ros imports the ``amcl`` package (the Apache-2.0 package must not)."""
    files = sorted((ROOT / 'flm_core').rglob('*.py')) + sorted((ROOT / 'flm_ros').rglob('*.py'))
    assert len(files) > 40
    offenders = [str(f.relative_to(ROOT)) for f in files if _IMPORT.search(f.read_text(encoding='utf-8'))]
    assert not offenders, f'these import the GPL "amcl" package: {offenders}'
    assert _IMPORT.search((ROOT / 'bench' / 'amcl_beam.py').read_text())     # the pattern does find an import


def test_importing_the_packages_does_not_import_amcl() -> None:
    code = ('import sys, flm_core, flm_core.estimation, flm_core.estimation.baselines, flm_core.estimation.harness, '
            'flm_core.estimation.mcl, flm_ros.evaluate; '
            'flm_ros.evaluate._baseline("amcl-lf"); '
            'assert "amcl" not in sys.modules, "amcl imported"; print("ok")')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert out.returncode == 0 and 'ok' in out.stdout, out.stderr


def test_compare_names_and_a_clear_error_without_the_bindings() -> None:
    from flm_ros.evaluate import BASELINES, _baseline

    assert {'amcl', 'amcl-lf', 'amcl-beam'} <= set(BASELINES)
    assert callable(_baseline('amcl-lf')['baseline'])
    with pytest.raises(ValueError, match='unknown baseline'):
        _baseline('amcl-nav2')
    # without the package (an import of it fails) the error says what to install and where to get it
    code = ('import sys; sys.modules["amcl"] = None\n'
            'from flm_ros.evaluate import _baseline\n'
            'try:\n    _baseline("amcl-beam")\nexcept ImportError as e:\n    print("ERR", e)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert 'ERR' in out.stdout and 'pip install -r requirements/bench.txt' in out.stdout, out.stdout + out.stderr
    assert 'github.com/damanikjosh/amcl_python' in out.stdout


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
def test_amcl_beam_converges_and_tracks(scenario, params: str) -> None:
    b = AmclBeamBaseline(scenario.site().map, scenario_extrinsics(scenario), TUNED if params == 'tuned' else None,
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


@needs_amcl
def test_beam_and_likelihood_field_agree_on_a_generated_bag(holonomic_bag) -> None:
    """Both AMCL variants through flm-eval's replay of the same bag (holonomic robot: both switch to the omni model
    from the odometry): both track, and their trajectories stay close. Measured: beam 0.09 m, likelihood field
    0.21 m APE RMSE, 0.16 m RMS apart."""
    lf, b_lf = replay(*holonomic_bag, 'amcl-lf')
    beam, b_beam = replay(*holonomic_bag, 'amcl-beam')
    assert b_beam.diagnostics()['motion_model'] == 'holonomic' == b_lf.diagnostics()['motion_model']
    assert beam.metrics['ape_m']['rmse'] < 0.3 and lf.metrics['ape_m']['rmse'] < 0.3
    t = np.intersect1d(lf.est.t, beam.est.t)
    assert len(t) > 350
    a = lf.est.poses[np.searchsorted(lf.est.t, t)]
    c = beam.est.poses[np.searchsorted(beam.est.t, t)]
    apart = np.hypot(a[:, 0] - c[:, 0], a[:, 1] - c[:, 1])
    assert np.sqrt(np.mean(apart ** 2)) < 0.25 and apart.max() < 0.6, (np.sqrt(np.mean(apart ** 2)), apart.max())
