"""The multi-sensor time buffer under shuffled, duplicated, late, future and backward-jumping stamps."""
import numpy as np
import pytest

from flm_core.geometry import quat_to_yaw, yaw_to_quat
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict


def test_shuffled_within_lateness_come_out_sorted():
    rng = np.random.default_rng(0)
    buf = TimeBuffer(TimeBufferConfig(window=2.0, max_lateness=0.5))
    stamps = np.round(np.arange(0, 1.0, 0.01), 6)
    # shuffle within blocks of 20 (0.2 s < max_lateness)
    order = np.concatenate([rng.permutation(np.arange(i, i + 20)) for i in range(0, len(stamps), 20)])
    verdicts = [buf.add('imu', float(stamps[i]), i) for i in order]
    assert all(v == Verdict.ACCEPTED for v in verdicts)
    w = buf.window(1.0)['imu']
    assert [s for s, _ in w] == sorted(stamps.tolist())
    assert [it for _, it in w] == list(range(len(stamps)))


def test_duplicates_and_too_late_are_dropped_and_counted():
    buf = TimeBuffer(TimeBufferConfig(window=2.0, max_lateness=0.3, jump_back=5.0))
    for t in (1.0, 1.1, 1.2):
        assert buf.add('scan', t, t) == Verdict.ACCEPTED
    assert buf.add('scan', 1.1, 'again') == Verdict.DUPLICATE
    assert buf.add('scan', 0.85, 'late') == Verdict.TOO_LATE  # 0.35 s behind the newest stamp
    assert buf.add('scan', 0.95, 'ok') == Verdict.ACCEPTED     # 0.25 s behind: still in time
    c = buf.counts()['scan']
    assert c == {'accepted': 4, 'duplicate': 1, 'too_late': 1}
    assert [it for _, it in buf.window(1.2)['scan']] == ['ok', 1.0, 1.1, 1.2]


def test_window_bounds_and_memory_stay_bounded():
    cfg = TimeBufferConfig(window=1.0, max_lateness=0.2, max_per_stream=50)
    buf = TimeBuffer(cfg)
    for k in range(10_000):
        buf.add('imu', k * 0.005, k)        # 200 Hz for 50 s
        if k % 20 == 0:
            buf.add('scan', k * 0.005, k)   # 10 Hz
    assert len(buf.window(50.0, 1e9)['imu']) <= 50       # hard cap
    assert buf.counts()['imu']['evicted'] > 0
    scans = buf.window(buf.latest)['scan']
    assert all(buf.latest - 1.0 <= s <= buf.latest for s, _ in scans)
    assert len(scans) == 10  # the 10 Hz stamps 49.0 .. 49.9 in [48.995, 49.995]
    assert len(buf) <= 50 + 13  # nothing older than window + lateness survives


def test_backward_jump_without_clock_resets_after_confirmation():
    buf = TimeBuffer(TimeBufferConfig(window=2.0, max_lateness=0.3, jump_back=1.0, jump_confirm=3))
    for k in range(100):
        buf.add('imu', 100.0 + k * 0.01, k)
    # a single stale message is only too late: nothing already held is lost
    assert buf.add('imu', 3.0, 'stale') == Verdict.TOO_LATE
    buf.add('imu', 101.0, 'fresh')
    assert len(buf.window(101.0)['imu']) == 101
    # a bag loop: consecutive messages far in the past -> reset, and the new timeline is kept
    assert buf.add('imu', 0.00, 'a') == Verdict.TOO_LATE
    assert buf.add('scan', 0.01, 'b') == Verdict.TOO_LATE
    assert buf.add('imu', 0.02, 'c') == Verdict.RESET
    assert buf.resets == 1
    assert buf.latest == pytest.approx(0.02)
    assert [it for _, it in buf.window(0.02)['imu']] == ['a', 'c']
    assert [it for _, it in buf.window(0.02)['scan']] == ['b']
    assert buf.add('imu', 0.03, 'd') == Verdict.ACCEPTED


def test_backward_jump_of_the_clock_resets_at_once():
    buf = TimeBuffer(TimeBufferConfig(jump_back=1.0))
    for k in range(10):
        assert buf.add('odom', 50.0 + k * 0.1, k, now=50.0 + k * 0.1 + 0.01) == Verdict.ACCEPTED
    assert buf.add('odom', 0.5, 'new', now=0.51) == Verdict.RESET
    assert [it for _, it in buf.window(0.5)['odom']] == ['new']


def test_future_and_nonfinite_stamps_are_rejected():
    buf = TimeBuffer(TimeBufferConfig(max_future=1.0))
    assert buf.add('uwb', 10.0, 1, now=10.0) == Verdict.ACCEPTED
    assert buf.add('uwb', 1e9, 2, now=10.1) == Verdict.FUTURE
    assert buf.add('uwb', float('nan'), 3, now=10.1) == Verdict.NONFINITE_STAMP
    assert buf.latest == 10.0
    assert buf.add('uwb', 10.2, 4, now=10.2) == Verdict.ACCEPTED


def test_interpolation_linear_and_pose_slerp():
    buf = TimeBuffer()
    for k in range(11):
        t = k * 0.1
        buf.add('imu', t, np.array([t, 2 * t, -t]))
        buf.add('odom', t, (np.array([t, 0.0, 0.0]), yaw_to_quat(t)))
    v = buf.interpolate('imu', 0.55, lambda a: a)
    np.testing.assert_allclose(v, [0.55, 1.1, -0.55], atol=1e-12)
    p, q = buf.interpolate_pose('odom', 0.37, lambda it: it)
    np.testing.assert_allclose(p, [0.37, 0, 0], atol=1e-12)
    assert quat_to_yaw(q) == pytest.approx(0.37, abs=1e-9)
    # small extrapolation allowed, large refused
    np.testing.assert_allclose(buf.interpolate('imu', 1.02, lambda a: a), [1.02, 2.04, -1.02], atol=1e-9)
    with pytest.raises(LookupError, match='extrapolation'):
        buf.interpolate('imu', 2.0, lambda a: a)
    with pytest.raises(LookupError, match='no data'):
        buf.interpolate('wheel', 0.5, lambda a: a)


def test_config_validation_names_the_parameter():
    with pytest.raises(ValueError, match='window'):
        TimeBufferConfig(window=0)
    with pytest.raises(ValueError, match='max_lateness'):
        TimeBufferConfig(max_lateness=-1)
    with pytest.raises(ValueError, match='max_per_stream'):
        TimeBufferConfig(max_per_stream=1)
