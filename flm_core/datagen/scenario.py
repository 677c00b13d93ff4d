"""One scenario = building + anchors + robot trajectory + people + sensor streams + ground truth, drawn from a
:class:`ScenarioConfig` with one integer seed (each dimension from its own generator, see seeds.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..site import Site
from .anchors import AnchorSet, generate_anchors
from .buildings import Building, generate_building
from .config import ScenarioConfig
from .dynamics import People, generate_people
from .motion import MotionParams, Trajectory, TrajectorySample, draw_motion_params, plan_trajectory
from .raycast import Raycaster
from .seeds import check_seed, rng_for
from .sensors import simulate_depth, simulate_imu, simulate_lidar2d, simulate_lidar3d, simulate_odom, simulate_uwb


@dataclass
class Scenario:
    seed: int
    config: ScenarioConfig
    building: Building
    anchors: AnchorSet
    motion: MotionParams
    trajectory: Trajectory
    people: People
    streams: dict[str, Any]           # sensor name -> stream (see sensors/)
    ground_truth: TrajectorySample    # at config.ground_truth_rate over [0, duration)
    name: str = ''
    params: dict[str, Any] = field(default_factory=dict)

    def site(self) -> Site:
        """The site description the localizer gets (map_server map + anchors; biases only if known_bias)."""
        return Site(name=self.name, frame_id='map', map=self.building.map,
                    anchors=self.anchors.site_anchors(self.config.anchors.known_bias))


def generate_scenario(cfg: ScenarioConfig, seed: int) -> Scenario:
    """Draw scenario ``seed`` from ``cfg`` (validated first). Deterministic: same cfg and seed -> same arrays."""
    cfg.validate()
    seed = check_seed(seed)
    dur = float(cfg.duration)
    b = generate_building(cfg.building, rng_for(seed, 'building'), cfg.motion.robot_radius)
    s = cfg.sensors
    anchors = generate_anchors(cfg.anchors, b, rng_for(seed, 'anchors'))
    mrng = rng_for(seed, 'motion')
    mp = draw_motion_params(cfg.motion, mrng, dur)
    traj = plan_trajectory(b.map, b.free_space(cfg.motion.robot_radius + 0.05), mp, dur, mrng)
    people = generate_people(cfg.dynamics, b, dur, rng_for(seed, 'dynamics'))
    need_rays = s.lidar2d.enabled or s.lidar3d.enabled or s.depth.enabled
    rc = Raycaster.from_building(b) if need_rays else None
    streams: dict[str, Any] = {}
    if s.lidar2d.enabled:
        streams['lidar2d'] = simulate_lidar2d(s.lidar2d, traj, rc, people, dur, rng_for(seed, 'lidar2d'))
    if s.lidar3d.enabled:
        streams['lidar3d'] = simulate_lidar3d(s.lidar3d, traj, rc, people, dur, rng_for(seed, 'lidar3d'))
    if s.depth.enabled:
        streams['depth'] = simulate_depth(s.depth, traj, rc, people, dur, rng_for(seed, 'depth'))
    if s.uwb.enabled:
        streams['uwb'] = simulate_uwb(s.uwb, traj, b, anchors, people, dur, rng_for(seed, 'uwb'))
    if s.imu.enabled:
        streams['imu'] = simulate_imu(s.imu, traj, dur, rng_for(seed, 'imu'))
    if s.odom.enabled:
        streams['odom'] = simulate_odom(s.odom, traj, mp.robot, dur, rng_for(seed, 'odom'))
    gt = traj.sample(np.arange(int(np.ceil(dur * cfg.ground_truth_rate))) / cfg.ground_truth_rate)
    name = f'{b.family}_{seed:07d}'
    params = {
        'seed': seed, 'name': name, 'building': b.params, 'anchors': {
            'layout': anchors.layout, 'ids': list(anchors.ids), 'positions': anchors.positions.tolist(),
            'bias': anchors.bias.tolist()},
        'motion': mp.to_dict(), 'people': {'count': people.count, 'speeds': list(people.speeds)},
        'sensors': {k: v.params for k, v in streams.items()},
    }
    return Scenario(seed=seed, config=cfg, building=b, anchors=anchors, motion=mp, trajectory=traj, people=people,
                    streams=streams, ground_truth=gt, name=name, params=_jsonable(params))


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x
