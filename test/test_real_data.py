"""The real recorded runs in ../shared/data through flm-eval: a short slice of each (written as a real rosbag2 with
flm_ros.bagio.write_slice), estimates exist, every message read is buffered or counted as dropped by reason.
Skipped with the reason where the folder is absent (a user's clone)."""
import importlib.util
import json

import numpy as np
import pytest

from conftest import ROOT
from flm_core.estimation.multilateration import naive_fix
from flm_ros import evaluate
from flm_ros.bagio import open_bag, write_slice

DATA = ROOT.parent / 'shared' / 'data'
SETS = sorted(d.name for d in DATA.iterdir() if (d / 'bag').is_dir()) if DATA.is_dir() else []

_spec = importlib.util.spec_from_file_location('real_data', ROOT / 'bench' / 'real_data.py')
real_data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(real_data)


def test_naive_fix_solves_an_exact_frame():
    anchors = np.array([[0, 0, 2.0], [8, 0, 2.5], [8, 6, 2.0], [0, 6, 2.5]])
    p = np.array([3.0, 2.0])
    r = np.linalg.norm(anchors - np.array([*p, 0.5]), axis=1)
    np.testing.assert_allclose(naive_fix(anchors, r, 0.5), p, atol=1e-9)
    assert naive_fix(anchors[:2], r[:2], 0.5) is None


@pytest.mark.skipif(not SETS, reason=f'no real recorded data at {DATA} (it ships with the project, not the package)')
@pytest.mark.parametrize('name', SETS or ['none'])
def test_a_slice_of_each_real_run_is_evaluated_and_nothing_is_dropped_silently(name, tmp_path):
    d = DATA / name
    bag = tmp_path / 'slice'
    n = write_slice(d / 'bag', bag, 12.0)
    r = open_bag(bag)
    assert r.message_count == n > 0 and (r.end_time - r.start_time) * 1e-9 <= 12.0 + 1e-6
    r.close()
    site = real_data.load_site(d / 'site.yaml')
    rc = evaluate.main([str(bag), '--site', str(d / 'site.yaml'), '--gt', f'tum:{d / "ground_truth.tum"}',
                        '--out', str(tmp_path / 'eval'), '--no-progress'] + (['--compare', 'uwb-ekf']
                                                                               if site.anchors else []))
    assert rc in (0, 4)
    m = json.loads((tmp_path / 'eval' / 'metrics.json').read_text())
    flm = m['methods']['flm']
    assert flm['estimates'] > 0 and flm['matched'] > 0
    ledger = real_data.message_ledger(flm['counts'])
    assert ledger and all(c['read'] > 0 and c['silent'] == 0 for c in ledger.values()), ledger
    if site.anchors:      # every range of a shared-stamp frame is used, none dropped as a 'duplicate'
        assert ledger['uwb']['buffered'] == ledger['uwb']['read']
        naive = real_data.naive_multilateration(bag, site)
        assert len(naive) > 100


def test_the_demo_ends_with_the_real_recording_shipped_in_the_repository(tmp_path):
    from flm_ros import demo

    assert 'MIT License' in (demo.REAL_RUN / 'README.md').read_text()
    assert demo.main(['--mode', 'offline', '--duration', '6', '--out', str(tmp_path)]) in (0, 4)
    m = json.loads((tmp_path / 'real_report' / 'metrics.json').read_text())
    assert set(m['methods']) == {'flm', 'uwb-ekf'}
    assert m['methods']['flm']['matched'] > 150 and m['methods']['flm']['ape_m']['rmse'] < 1.0
