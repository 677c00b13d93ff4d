"""Fault handling below the node, without ROS: the behaviours the fault matrix (test_faults.py) found missing, each
pinned down where it lives (validation, front end, time buffer, pipeline).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from flm_core.frontend import SensorFrontEnd
from flm_core.measurements import LaserScan2D, OdometrySample, PointCloud, RangeSample
from flm_core.pipeline import Pipeline, PipelineConfig, State
from flm_core.site import Site
from flm_core.timebuffer import TimeBuffer, TimeBufferConfig, Verdict
from flm_core.validation import Expectations, rejection_reason

EXPECT = Expectations(anchor_ids=frozenset({'a0'}))


def _scan(t: float, ranges) -> LaserScan2D:
    r = np.asarray(ranges, np.float32)
    return LaserScan2D(stamp=t, frame_id='laser', angles=np.linspace(-1, 1, len(r)).astype(np.float32), ranges=r,
                       range_min=0.1, range_max=20.0)


def _odom(t: float, x: float = 0.0) -> OdometrySample:
    return OdometrySample(stamp=t, frame_id='odom', child_frame_id='base_link', position=np.array([x, 0.0, 0.0]),
                          orientation=np.array([0.0, 0.0, 0.0, 1.0]), linear_velocity=np.array([0.5, 0.0, 0.0]),
                          angular_velocity=np.zeros(3), pose_covariance=np.eye(6) * 1e-3,
                          twist_covariance=np.eye(6) * 1e-3)


def test_scans_and_clouds_without_one_usable_value_are_rejected_by_reason():
    assert rejection_reason(_scan(1.0, [np.nan] * 5), EXPECT) == 'no_valid_ranges'
    assert rejection_reason(_scan(1.0, [-1.0, -2.0]), EXPECT) == 'no_valid_ranges'
    assert rejection_reason(_scan(1.0, [0.01, 50.0, -np.inf]), EXPECT) == 'no_valid_ranges'   # outside the limits
    assert rejection_reason(_scan(1.0, [np.inf, np.inf]), EXPECT) is None     # REP-117: nothing within range_max
    assert rejection_reason(_scan(1.0, [np.nan, 2.0, -1.0]), EXPECT) is None   # partly bad: masked downstream
    assert rejection_reason(_scan(1.0, []), EXPECT) == 'empty'
    nan = PointCloud(stamp=1.0, frame_id='l', xyz=np.full((10, 3), np.nan, np.float32))
    assert rejection_reason(nan, EXPECT) == 'no_finite_points'
    part = PointCloud(stamp=1.0, frame_id='l', xyz=np.array([[np.nan, 0, 0], [1, 2, 3]], np.float32))
    assert rejection_reason(part, EXPECT) is None
    for r in (np.nan, np.inf, -3.0):
        assert rejection_reason(RangeSample(stamp=1.0, anchor_id='a0', range=r), EXPECT) == 'invalid_range'
    assert rejection_reason(RangeSample(stamp=1.0, anchor_id='ghost', range=3.0), EXPECT) == 'unknown_anchor'


def test_a_stream_that_stopped_reads_stale_not_absent():
    """The age of a stream is kept after the buffer forgot its data (window + lateness), until time jumps back."""
    front = SensorFrontEnd(TimeBufferConfig(window=1.0, max_lateness=0.2), EXPECT)
    front.offer('scan', _scan(10.0, [1.0, 2.0]), now=10.0)
    for t in np.arange(10.0, 20.0, 0.1):
        front.offer('odom', _odom(t), now=t)
    assert front.buffer.last_stamp('scan') is None           # pruned long ago
    assert abs(front.age('scan', 20.0) - 10.0) < 1e-9        # ... but still 10 s old, not 'no data'
    assert front.stats(['scan', 'points'], 20.0)['points']['age_s'] is None   # never seen: absent
    front.offer('odom', _odom(1.0), now=1.0)                 # bag loop: the clock went back
    assert front.age('scan', 1.0) is None and abs(front.age('odom', 1.0)) < 1e-9


def test_a_message_in_flight_across_a_clock_jump_does_not_start_the_new_timeline():
    """Bag loop: the clock jumps back, then one message stamped before the jump arrives. It must not become the
    newest stamp of the new timeline (every later message would be refused as too late: a frozen localizer)."""
    buf = TimeBuffer(TimeBufferConfig())
    for t in np.arange(100.0, 110.0, 0.1):
        assert buf.add('imu', t, None, now=t) == Verdict.ACCEPTED
    assert buf.add('imu', 110.0, None, now=5.0) == Verdict.FUTURE      # old message, new clock
    assert buf.resets == 1 and buf.latest is None
    assert buf.add('imu', 5.0, None, now=5.0) == Verdict.ACCEPTED      # the new timeline goes on
    assert buf.add('imu', 5.1, None, now=5.1) == Verdict.ACCEPTED
    assert buf.add('imu', 5.0, None, now=5.2) == Verdict.DUPLICATE
    # the normal case is unchanged: the first message of the new timeline resets and starts it
    assert buf.add('imu', 1.0, None, now=1.0) == Verdict.RESET and buf.latest == 1.0


@dataclass
class _Est:
    pose: np.ndarray
    cov: np.ndarray
    health: dict = field(default_factory=dict)


class _Source:
    """A pose source that returns its prior (or a fixed global pose), counts calls, and can be held in localize()."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, bool]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def localize(self, window, site, t, prior_pose=None, prior_cov=None, rig=None):
        self.calls.append((t, prior_pose is None))
        self.entered.set()
        self.hold.wait(10.0)
        pose = np.array([1.0, 2.0, 0.0]) if prior_pose is None else np.asarray(prior_pose, float)
        return _Est(pose, np.diag([0.05, 0.05, 0.01]))


def _pipeline(global_on_start: bool = True) -> tuple[Pipeline, _Source]:
    src = _Source()
    site = Site(name='empty', frame_id='map', anchors=())
    front = SensorFrontEnd(TimeBufferConfig(), EXPECT)
    cfg = PipelineConfig(global_on_start=global_on_start, min_global_data=0.5)
    return Pipeline(cfg, site, src, front, ['scan', 'odom']), src


def _feed(pl: Pipeline, t0: float, t1: float, scan: bool = True) -> None:
    for t in np.arange(t0, t1, 0.02):
        pl.offer('odom', _odom(t, 0.5 * t), now=t)
        if scan and round(t * 50) % 5 == 0:
            pl.offer('scan', _scan(t, [1.0, 2.0, 3.0]), now=t)


def _std(cov: np.ndarray) -> float:
    return float(np.sqrt(np.linalg.eigvalsh(cov[:2, :2]).max()))


def test_no_new_data_no_new_fusion_and_blind_means_growing_covariance():
    pl, src = _pipeline()
    pl.set_initial_pose(np.zeros(3), np.diag([0.01, 0.01, 0.01]), 0.0)
    _feed(pl, 0.0, 3.0)
    r1 = pl.step()
    n = len(src.calls)
    assert n == 1 and r1 is not None
    for _ in range(5):                      # no new data: same estimate, the model is not asked again
        r = pl.step()
        assert r.stamp == r1.stamp and np.allclose(r.cov, r1.cov)
    assert len(src.calls) == n
    # scans stop (odometry goes on): once the window holds no absolute data the model is not asked, the filter
    # dead-reckons and its covariance grows
    stds = []
    for k in range(1, 30):
        _feed(pl, 3.0 + (k - 1) * 0.5, 3.0 + k * 0.5, scan=False)
        stds.append(_std(pl.step().cov))
    assert len(src.calls) <= n + 5          # only while the last scans were still in the 2 s window
    assert all(b >= a for a, b in zip(stds[5:], stds[6:])) and stds[-1] > 2 * stds[5]
    assert pl.state == State.TRACKING or pl.state == State.LOST


def test_offer_does_not_wait_for_the_pose_source():
    """Sensor callbacks (offer) run while the model runs; a result for a filter reset meanwhile is dropped."""
    pl, src = _pipeline()
    pl.set_initial_pose(np.zeros(3), np.diag([0.01, 0.01, 0.01]), 0.0)
    _feed(pl, 0.0, 2.0)
    src.hold.clear()
    res: list = []
    th = threading.Thread(target=lambda: res.append(pl.step()))
    th.start()
    assert src.entered.wait(5.0)
    t0 = time.monotonic()
    _feed(pl, 2.0, 2.5)                      # would block on the pipeline lock before
    pl.set_initial_pose(np.array([5.0, 5.0, 0.0]), np.diag([0.01, 0.01, 0.01]), 2.5)
    assert time.monotonic() - t0 < 2.0
    src.hold.set()
    th.join(5.0)
    assert res == [None]                     # obsolete: the filter was re-initialised while the model ran
    r = pl.step()
    assert np.hypot(r.pose[0] - 5.0, r.pose[1] - 5.0) < 0.5


def test_global_on_start_false_waits_for_an_initial_pose_also_after_a_time_jump():
    pl, src = _pipeline(global_on_start=False)
    _feed(pl, 0.0, 3.0)
    assert pl.step() is None and src.calls == []                  # no global localization without a pose
    pl.set_initial_pose(np.zeros(3), np.diag([0.01, 0.01, 0.01]), 3.0)
    _feed(pl, 3.0, 4.0)
    assert pl.step() is not None
    _feed(pl, 0.5, 2.0)                                           # bag loop
    assert pl.state == State.INITIALIZING and any('time jumped back' in w for _, w in pl.events)
    n = len(src.calls)
    assert pl.step() is None and len(src.calls) == n
    pl2, src2 = _pipeline(global_on_start=True)
    _feed(pl2, 0.0, 3.0)
    r = pl2.step()
    assert r is not None and src2.calls[-1][1] and np.allclose(r.pose[:2], [1.0, 2.0])   # global at start


def test_the_matrix_clock_slows_as_a_whole():
    """The fault matrix's timeline (bench/faultlab): fast stretches at ``rate`` x real time and its real-time windows
    (storms, the kidnap, the bag loop) at ``slow_rate`` x, so a clock slowed for a loaded machine keeps every
    window's share of the node's CPU."""
    from bench.faultlab.plan import Plan

    plan = Plan(scenario=None, cases=[], items=[], segments=[], slow=[(30.0, 40.0)], end=100.0)
    wall = plan.wall_schedule(3.0)
    assert wall(30.0) == 10.0 and wall(40.0) == 20.0 and wall(100.0) == 40.0
    slow = plan.wall_schedule(3.0 * 0.5, slow_rate=0.5)
    assert [slow(t) for t in (30.0, 35.0, 40.0, 100.0)] == [20.0, 30.0, 40.0, 80.0]
