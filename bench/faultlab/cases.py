"""The fault matrix's case table: the faults, one after the other on one timeline, and the world they play in.

Times are *play* seconds (see :mod:`bench.faultlab.plan`). :data:`HOSTILE` lists each hostile message kind with the
stream it goes to and the rejection reason (or time-buffer verdict) the node must count for it on /diagnostics.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIO_S = 188.0               # s of the generated fault scenario (the world the matrix was developed on)
EPOCH = 1_700_000_000.0          # s added to scenario time in stamps and /clock (a plausible wall-clock origin)
TOPICS = {'scan': '/scan', 'points': '/points', 'depth': '/camera/depth/image_raw', 'uwb': '/uwb/ranges',
          'imu': '/imu/data', 'odom': '/odom'}
STREAMS = tuple(TOPICS)
REJECTION_VERDICTS = ('buffer.duplicate', 'buffer.too_late', 'buffer.future', 'buffer.reset',
                      'buffer.nonfinite_stamp')   # time-buffer verdicts reported with the rejections
BIG_SENDS = 8                    # each huge message is sent this often (best effort may lose some)
EXTEROCEPTIVE = ('scan', 'points', 'depth', 'uwb')   # the streams that localize; imu/odom only propagate
SENSOR_STREAM = {'lidar2d': 'scan', 'lidar3d': 'points', 'depth': 'depth', 'uwb': 'uwb', 'imu': 'imu', 'odom': 'odom'}

#: (stream, expected rejection reason or buffer verdict) of each hostile message kind (see :func:`hostile`).
HOSTILE = {
    'scan_nan': ('scan', 'no_valid_ranges'), 'scan_negative': ('scan', 'no_valid_ranges'),
    'scan_empty': ('scan', 'empty'), 'scan_inf_partial': ('scan', None),
    'cloud_nan': ('points', 'no_finite_points'), 'cloud_empty': ('points', 'empty'),
    'uwb_nan': ('uwb', 'invalid_range'), 'uwb_inf': ('uwb', 'invalid_range'), 'uwb_negative': ('uwb', 'invalid_range'),
    'uwb_unknown_anchor': ('uwb', 'unknown_anchor'),
    'imu_zero_quaternion': ('imu', 'bad_quaternion'), 'imu_nan': ('imu', 'nonfinite'),
    'imu_nan_covariance': ('imu', 'nonfinite_covariance'),
    'odom_nan_covariance': ('odom', 'nonfinite_covariance'), 'odom_wrong_frame': ('odom', 'wrong_frame'),
    'odom_zero_quaternion': ('odom', 'bad_quaternion'),
    'scan_duplicate': ('scan', 'buffer.duplicate'), 'odom_duplicate': ('odom', 'buffer.duplicate'),
    'scan_out_of_order': ('scan', None), 'scan_too_late': ('scan', 'buffer.too_late'),
    'imu_far_future': ('imu', 'buffer.future'), 'odom_far_future': ('odom', 'buffer.future'),
    'odom_backwards': ('odom', 'buffer.too_late'),
}


# ------------------------------------------------------------------------------------------------ the case table
@dataclass(frozen=True)
class Case:
    """One fault. ``t0``/``t1``: play seconds when it starts and when good data is back (for instantaneous faults,
    the end of the window in which its effects are judged); ``streams``: the streams it affects."""

    name: str
    kind: str          # drop | hostile | storm | big_cloud | big_image | initialpose_bad | kidnap | loop
    t0: float
    t1: float
    streams: tuple[str, ...] = ()
    what: str = ''


def default_cases(start: float = 4.0, gap: float = 10.0, pause: float = 3.0) -> list[Case]:
    """The matrix, one after the other on one timeline (each leaves the node tracking for the next)."""
    cases: list[Case] = []
    t = start
    cases.append(Case('hostile_input', 'hostile', t, t + 6.0, what='NaN/inf/negative/empty scans, clouds and '
                      'ranges, unknown anchors, zero quaternions, NaN covariances, wrong frames, duplicated, '
                      'out-of-order, late, far-future and backwards stamps, mixed into good data'))
    t += 6.0 + pause
    for s in STREAMS:
        cases.append(Case(f'drop_{s}', 'drop', t, t + gap, (s,), f'{s} stops for {gap:g} s, then resumes'))
        t += gap + pause
    cases.append(Case('drop_exteroceptive', 'drop', t, t + gap, EXTEROCEPTIVE,
                      f'scan, points, depth and UWB stop for {gap:g} s (only IMU and odometry left: blind)'))
    t += gap + pause
    cases.append(Case('drop_all', 'drop', t, t + gap, STREAMS, f'every sensor stops for {gap:g} s (/clock runs)'))
    t += gap + pause
    cases.append(Case('storm_10x', 'storm', t, t + 2.0, STREAMS, '10x message rate on every topic for 2 s'))
    t += 2.0 + pause
    cases.append(Case('huge_cloud', 'big_cloud', t, t + 3.0, ('points',), f'a 2M-point cloud, sent {BIG_SENDS} times'))
    t += 3.0 + 1.0
    cases.append(Case('huge_image', 'big_image', t, t + 3.0, ('depth',),
                      f'a 4096x4096 depth image, sent {BIG_SENDS} times'))
    t += 3.0 + pause
    cases.append(Case('initialpose_bad', 'initialpose_bad', t, t + 2.0, (),
                      '/initialpose in the odom frame, far outside the map, and NaN'))
    t += 2.0 + pause
    # a kidnap may land where a symmetric building looks the same from elsewhere (the default scenario is a
    # corridor with its anchors in a row): the node has 9 s to settle it, and must never be confidently wrong
    cases.append(Case('kidnap', 'kidnap', t, t + 10.0, (), 'the robot is teleported (sensors see another place, '
                      'odometry continues)'))
    t += 10.0 + pause
    cases.append(Case('bag_loop', 'loop', t, t + 6.0, (), 'stamps and /clock jump back to the start (bag loop)'))
    return cases


# ------------------------------------------------------------------------------------------------ the scenario
def fault_scenario(duration: float = SCENARIO_S, seed: int = 5, lidar3d: bool = True, depth: bool = True) -> Any:
    """A generated scenario with every stream (IMU at 100 Hz, a small 3D lidar, a small depth camera), no kidnaps
    of its own (the kidnap case makes one). Seed 5 is a long symmetric corridor with its anchors in a row: after a
    kidnap its mirror image is as plausible as the truth until the robot sees what tells them apart."""
    from flm_core.datagen.config import ScenarioConfig  # noqa: PLC0415
    from flm_core.datagen.scenario import generate_scenario  # noqa: PLC0415

    cfg = ScenarioConfig(duration=float(duration))
    cfg.motion.kidnap_prob = 0.0
    cfg.sensors.imu.rate = 100.0
    cfg.sensors.lidar3d.enabled = lidar3d
    cfg.sensors.lidar3d.rings, cfg.sensors.lidar3d.beams = 8, 180
    cfg.sensors.depth.enabled = depth
    cfg.sensors.depth.rate = 5.0
    return generate_scenario(cfg, seed)


def random_model(path: str | Path, seed: int = 0) -> Path:
    """Export a freshly initialised FLM as a TorchScript model file: a real file for the real loader, with untrained
    weights (at initialisation its correction is a plain geometric mean-offset step and its covariance is fixed,
    so it does not detect a kidnap and its global localization is not meaningful)."""
    import torch  # noqa: PLC0415

    from flm_core.model.export import build_meta, export_torchscript  # noqa: PLC0415
    from flm_core.model.net import FLM, FLMConfig  # noqa: PLC0415
    from flm_core.model.tokens import TokenConfig  # noqa: PLC0415

    torch.manual_seed(seed)
    m = FLM(FLMConfig())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    export_torchscript(m, path, build_meta(m, dataclasses.asdict(TokenConfig())))
    return path

