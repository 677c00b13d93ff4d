"""Several sensors of one kind (GitHub-style issue 16): two UWB tags, each in its own frame, and two lidars, each
in its own frame. The real front end, time buffer, tokenizer, solver and classical pose sources, no mocks.

The robot carries two tags at +-0.3 m across it; every range is measured from the tag that names it, so each must
be put at its own lever arm: with the tags' frames swapped the tokens and the solutions are measurably wrong.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from flm_core.estimation.baselines import IcpPoseSource, UwbBaseline, UwbPoseSource
from flm_core.estimation.solver import RangeBlock, solve
from flm_core.frontend import SensorFrontEnd
from flm_core.measurements import LaserScan2D, RangeSample
from flm_core.model.tokens import TYPE_ID, MapIndex, Rig, TokenConfig, prepare, tokenize
from flm_core.rig import RigBuilder, frames_in
from flm_core.site import Anchor, OccupancyMap, Site
from flm_core.timebuffer import TimeBufferConfig, Verdict
from flm_core.validation import Expectations

ANCHORS = {'a0': (0.0, 0.0, 2.5), 'a1': (10.0, 0.0, 2.4), 'a2': (0.0, 8.0, 2.6), 'a3': (10.0, 8.0, 2.5),
           'a4': (5.0, -2.0, 2.0), 'a5': (5.0, 10.0, 2.2)}
POSE = np.array([4.0, 3.0, 0.7])                 # base_link in the map: x, y (m), yaw (rad)
TAGS = {'tag_left': (0.1, 0.3, 0.5, 0.0), 'tag_right': (0.1, -0.3, 0.5, 0.0)}   # x, y, z, yaw in base_link
SITE = Site(name='six_anchors', anchors=tuple(Anchor(k, np.array(v)) for k, v in ANCHORS.items()))
RIG = Rig(mounts=TAGS, uwb_frame='tag_left', tag_frames=tuple(TAGS))
T = 10.0


def _tag_in_map(tag: str) -> np.ndarray:
    x, y, z, _ = TAGS[tag]
    c, s = math.cos(POSE[2]), math.sin(POSE[2])
    return np.array([POSE[0] + c * x - s * y, POSE[1] + s * x + c * y, z])


def _ranges(measured_by: str, labelled: str, stamp: float = T) -> list[tuple[float, RangeSample]]:
    """Exact ranges from tag ``measured_by`` to every anchor, named as measured by ``labelled``."""
    p = _tag_in_map(measured_by)
    return [(stamp, RangeSample(stamp=stamp, anchor_id=a, range=float(np.linalg.norm(p - np.array(xyz))),
                                max_range=50.0, tag_frame=labelled)) for a, xyz in ANCHORS.items()]


def _window(swap: bool = False) -> dict[str, list]:
    left, right = ('tag_right', 'tag_left') if swap else ('tag_left', 'tag_right')
    return {'uwb': sorted(_ranges('tag_left', left) + _ranges('tag_right', right), key=lambda e: e[0])}


def _range_residuals(window: dict[str, list]) -> np.ndarray:
    """Measured - predicted range of every UWB token at the true pose (token feature 10)."""
    frame = prepare(window, SITE, T, RIG, TokenConfig())
    tok = tokenize(frame, MapIndex(SITE), POSE)
    return tok.feats[0, tok.types[0] == TYPE_ID['uwb'], 10]


def test_tokens_put_each_range_at_its_own_tags_lever_arm():
    good = _range_residuals(_window())
    assert len(good) == 12 and np.max(np.abs(good)) < 1e-4, good
    swapped = _range_residuals(_window(swap=True))
    assert np.max(np.abs(swapped)) > 0.1, swapped
    # '' is the primary tag (Rig.uwb_frame)
    unnamed = {'uwb': [(s, RangeSample(stamp=s, anchor_id=m.anchor_id, range=m.range, max_range=50.0))
                       for s, m in _ranges('tag_left', 'tag_left')]}
    assert np.max(np.abs(_range_residuals(unnamed))) < 1e-4


def test_the_solver_on_prepared_ranges_finds_the_heading_only_with_the_right_tags():
    """Two tags observe the heading: solved from the prepared frame, the right frames give the pose, swapped ones
    the robot turned about (a tag swap is a half turn), from a start 0.3 rad off either way."""
    def solved(swap: bool) -> np.ndarray:
        frame = prepare(_window(swap), SITE, T, RIG, TokenConfig())
        block = RangeBlock(frame.uwb_anchor, frame.uwb_range, frame.uwb_tag, sigma=0.05)
        return solve([block], POSE + np.array([0.2, -0.2, 0.3])).pose

    good, bad = solved(False), solved(True)
    assert np.hypot(*(good[:2] - POSE[:2])) < 1e-3 and abs(good[2] - POSE[2]) < 1e-3, good
    assert abs(math.remainder(bad[2] - POSE[2], 2 * math.pi)) > 0.5 or np.hypot(*(bad[:2] - POSE[:2])) > 0.1, bad


def test_uwb_pose_source_and_baseline_use_each_tags_lever_arm():
    """One tag's ranges: named by their own tag, base_link comes out where it is; named as the other tag's (0.6 m
    away across the robot), 0.6 m off. Both tags together: each solved at its own lever arm, then fused."""
    src = UwbPoseSource()
    prior_cov = np.diag([0.1, 0.1, 1e-4])
    for tag in TAGS:
        other = next(t for t in TAGS if t != tag)
        right = src.localize({'uwb': _ranges(tag, tag)}, SITE, T, POSE, prior_cov, RIG)
        wrong = src.localize({'uwb': _ranges(tag, other)}, SITE, T, POSE, prior_cov, RIG)
        assert np.hypot(*(right.pose[:2] - POSE[:2])) < 0.01, right.pose
        assert np.hypot(*(wrong.pose[:2] - POSE[:2])) > 0.5, wrong.pose
    both = src.localize(_window(), SITE, T, POSE, prior_cov, RIG)
    assert both.info['tags'] == 2 and np.hypot(*(both.pose[:2] - POSE[:2])) < 0.01, both.pose
    # the streaming baseline (1 s of ranging frames): each tag's epochs fused at that tag's mount
    for labelled, ok in (('tag_right', True), ('tag_left', False)):
        b = UwbBaseline(SITE, extrinsics=dict(TAGS), eskf=None, use_odom=False)
        b.reset(T - 0.1, POSE.copy(), np.diag([0.01, 0.01, 1e-4]))
        for k in range(10):
            for _, m in _ranges('tag_right', labelled, T + 0.1 * k):
                b.step(m)
        err = np.hypot(*(b.estimate(T + 0.9).pose[:2] - POSE[:2]))
        assert (err < 0.01) if ok else (err > 0.3), (labelled, err)


def _points_of(mount: tuple[float, float, float, float], targets: np.ndarray, frame: str) -> LaserScan2D:
    """A scan from a lidar at ``mount`` (x, y, z, yaw in base_link) whose beams end on ``targets`` (n, 2), given
    in base_link."""
    c, s = math.cos(mount[3]), math.sin(mount[3])
    d = targets - np.array(mount[:2])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], -1)
    ang = np.arctan2(local[:, 1], local[:, 0])
    order = np.argsort(ang)
    return LaserScan2D(stamp=T, frame_id=frame, angles=ang[order].astype(np.float32),
                       ranges=np.hypot(local[:, 0], local[:, 1])[order].astype(np.float32), range_min=0.05,
                       range_max=30.0)


@pytest.mark.parametrize('cap', [256, 24])
def test_two_half_lidars_give_the_points_of_one_full_lidar(cap):
    """A room's walls seen by one 360 deg lidar at base_link, and by a front and a rear lidar (other mounts, each
    seeing its half): the same prepared points, with the beam cap shared between the two."""
    rng = np.random.default_rng(3)
    az = np.sort(rng.uniform(-math.pi, math.pi, 120))
    r = rng.uniform(2.0, 5.0, len(az))
    targets = np.stack([r * np.cos(az), r * np.sin(az)], -1)
    front_m, rear_m = (0.3, 0.1, 0.0, 0.2), (-0.3, -0.1, 0.0, math.pi - 0.1)
    front = targets[:, 0] > 0
    rig = Rig(mounts={'laser': (0.0, 0.0, 0.0, 0.0), 'front_laser': front_m, 'rear_laser': rear_m})
    cfg = TokenConfig(max_beams=cap)
    one = prepare({'scan': [(T, _points_of((0.0, 0.0, 0.0, 0.0), targets, 'laser'))]}, SITE, T, rig, cfg)
    two = prepare({'scan': [(T, _points_of(front_m, targets[front], 'front_laser')),
                            (T, _points_of(rear_m, targets[~front], 'rear_laser'))]}, SITE, T, rig, cfg)
    assert len(one.pts) == min(cap, len(targets))
    key = (lambda p: p[np.lexsort((p[:, 1], p[:, 0]))])
    np.testing.assert_allclose(key(two.pts), key(one.pts), atol=1e-5)
    # each point keeps its own lidar's origin
    origins = {tuple(np.round(o[:2], 6)) for o in two.org}
    assert origins == {(0.3, 0.1), (-0.3, -0.1)}, origins


def test_the_buffer_keeps_both_lidars_and_both_tags_at_one_stamp():
    front = SensorFrontEnd(TimeBufferConfig(), Expectations(anchor_ids=frozenset(ANCHORS)))
    scan = (lambda frame: LaserScan2D(stamp=T, frame_id=frame, angles=np.zeros(3, np.float32),
                                      ranges=np.ones(3, np.float32), range_min=0.1, range_max=10.0))
    assert front.offer('scan', scan('front_laser'), T) == Verdict.ACCEPTED
    assert front.offer('scan', scan('rear_laser'), T) == Verdict.ACCEPTED
    assert front.offer('scan', scan('rear_laser'), T) == Verdict.DUPLICATE      # the same lidar twice: a duplicate
    verdicts = [front.offer('uwb', m, T) for _, m in _window()['uwb']]
    assert verdicts == [Verdict.ACCEPTED] * 12, verdicts
    assert front.offer('uwb', _ranges('tag_left', 'tag_left')[0][1], T) == Verdict.DUPLICATE
    w = front.buffer.window(T)
    assert {m.frame_id for _, m in w['scan']} == {'front_laser', 'rear_laser'}
    assert len({(m.tag_frame, m.anchor_id) for _, m in w['uwb']}) == 12
    # the newest of each lidar: both frames get their mounts looked up
    assert frames_in(front.buffer.newest()) == {'front_laser', 'rear_laser'}


def test_rig_builder_looks_up_every_tag_again_at_each_call():
    """A tag that moves (hand-held): each tag frame's newest transform at every call; tag_height fixes all."""
    height = {'tag_left': 0.5, 'tag_right': 0.7}

    def lookup(base: str, frame: str):
        if frame not in height:
            raise LookupError(frame)
        return np.array([0.0, 0.3 if frame == 'tag_left' else -0.3, height[frame]]), np.array([0.0, 0.0, 0.0, 1.0])

    rb = RigBuilder(lookup, 'base_link', 'tag_left', tag_frames=['tag_right'])
    rig = rb.rig(set())
    assert rig.tag_frames == ('tag_left', 'tag_right') and rig.tag_mount('')[2] == 0.5
    assert rig.tag_mount('tag_right')[1:3].tolist() == [-0.3, 0.7]
    height['tag_right'] = 1.2
    assert rb.rig(set()).tag_mount('tag_right')[2] == 1.2
    fixed = RigBuilder(lookup, 'base_link', 'tag_left', tag_height=0.9, tag_frames=['tag_right']).rig(set())
    assert fixed.tag_mount('tag_left')[2] == fixed.tag_mount('tag_right')[2] == 0.9


def _room() -> Site:
    """A 10 m x 8 m room (walls one 5 cm cell thick) with a pillar, as an occupancy map."""
    grid = np.zeros((161, 201), np.int8)
    grid[[0, -1], :] = grid[:, [0, -1]] = 100
    grid[100:110, 140:150] = 100                      # a pillar at x 7.0-7.5, y 5.0-5.5
    return Site(name='room', map=OccupancyMap(grid=grid, resolution=0.05, origin=np.zeros(3)))


def _scan_in_room(site: Site, mount: tuple[float, float, float, float], frame: str, lo: float, hi: float
                  ) -> LaserScan2D:
    """A lidar at ``mount`` on the robot at POSE: beams from ``lo`` to ``hi`` (rad, sensor frame) marched through
    the map to the first occupied cell."""
    ang = np.arange(lo, hi, 0.01)
    c, s = math.cos(POSE[2]), math.sin(POSE[2])
    o = POSE[:2] + np.array([c * mount[0] - s * mount[1], s * mount[0] + c * mount[1]])
    heading = POSE[2] + mount[3] + ang
    steps = np.arange(0.05, 15.0, 0.01)
    pts = o[None, None, :] + steps[None, :, None] * np.stack([np.cos(heading), np.sin(heading)], -1)[:, None, :]
    cells = site.map.world_to_cell(pts)
    hit = site.map.grid[np.clip(cells[..., 1], 0, 160), np.clip(cells[..., 0], 0, 200)] > 50
    r = steps[np.argmax(hit, axis=1)]
    return LaserScan2D(stamp=T, frame_id=frame, angles=ang.astype(np.float32), ranges=r.astype(np.float32),
                       range_min=0.05, range_max=30.0)


def test_icp_pose_source_registers_both_lidars_scans_together():
    """A front and a rear lidar (each seeing half the room) register to the pose one full lidar gives; the front
    lidar alone (a half scan) is counted as one lidar."""
    site = _room()
    front_m, rear_m = (0.3, 0.1, 0.2, 0.0), (-0.3, -0.1, 0.2, math.pi)
    rig = Rig(mounts={'laser': (0.0, 0.0, 0.2, 0.0), 'front_laser': front_m, 'rear_laser': rear_m})
    full = {'scan': [(T, _scan_in_room(site, (0.0, 0.0, 0.2, 0.0), 'laser', -math.pi, math.pi))]}
    two = {'scan': [(T, _scan_in_room(site, front_m, 'front_laser', -math.pi / 2, math.pi / 2)),
                    (T, _scan_in_room(site, rear_m, 'rear_laser', -math.pi / 2, math.pi / 2))]}
    start, cov = POSE + np.array([0.15, -0.1, 0.05]), np.diag([0.05, 0.05, 0.01])
    one_pose = IcpPoseSource(2).localize(full, site, T, start, cov, rig)
    two_pose = IcpPoseSource(2).localize(two, site, T, start, cov, rig)
    assert two_pose.info['lidars'] == 2 and one_pose.info['lidars'] == 1
    for est in (one_pose, two_pose):
        assert np.hypot(*(est.pose[:2] - POSE[:2])) < 0.05 and abs(est.pose[2] - POSE[2]) < 0.02, est.pose
    assert two_pose.info['fitness'] > 0.95, two_pose.info
    # the rear lidar's scan taken at another mount (the full lidar's, facing forward): 40 % of the points off the map
    wrong = {'scan': [two['scan'][0], (T, LaserScan2D(**{**two['scan'][1][1].__dict__, 'frame_id': 'laser'}))]}
    bad = IcpPoseSource(2).localize(wrong, site, T, start, cov, rig)
    assert bad is None or bad.info['fitness'] < 0.8, bad.info
