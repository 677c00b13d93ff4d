"""One scenario = building + anchors + robot trajectory + people + sensor streams + ground truth, drawn from a
:class:`ScenarioConfig` with one integer seed (each dimension from its own generator, see seeds.py).

Where realism applies (config.RealismConfig, by default to the reserved evaluation seeds) the scenario also has:
the world changed after mapping (changes.py: ``map_world`` as it was mapped, ``building`` as the sensors see it),
a site map made by a simulated mapping run of ``map_world`` (mapping.py: ``mapped``; the site file's map), more
people (never in the map), see-through glass, and the drawn sensor habits (realism.py: ``habits``: shared UWB frame
stamps, anchor biases of both signs, coplanar anchors, a tilted platform, a z-down IMU, a tag moving up and down,
keyframe-only scans). ``config`` is then the effective one (e.g. the IMU mount rolled by pi when it is z-down)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..site import Site
from .anchors import AnchorSet, generate_anchors
from .buildings import Building, generate_building
from .changes import apply_changes
from .config import ScenarioConfig
from .dynamics import People, generate_people
from .mapping import MappedSite, simulate_mapping
from .motion import MotionParams, Trajectory, TrajectorySample, draw_motion_params, plan_trajectory
from .platform import ypr_to_quat
from .raycast import Raycaster, glassless_raycaster
from .realism import Habits, apply_to_anchors, draw_habits, effective_config, realism_applies
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
    realism: bool = False             # the realism dimensions apply (see the module docstring)
    map_world: Building | None = None  # the world when it was mapped (None: the same as ``building``)
    mapped: MappedSite | None = None  # the simulated mapping run (None: the site map is the exact geometry)
    habits: Habits | None = None

    def site(self) -> Site:
        """The site description the localizer gets (map_server map + anchors; biases only if known_bias): the map
        from the mapping run where there is one, else the exact geometry the sensors see."""
        occ = self.mapped.map if self.mapped is not None else self.building.map
        pts = self.mapped.points if self.mapped is not None else None
        return Site(name=self.name, frame_id='map', map=occ, point_map=pts,
                    anchors=self.anchors.site_anchors(self.config.anchors.known_bias))

    def base_orientation(self, t: np.ndarray) -> np.ndarray:
        """(N, 4) quaternions (x, y, z, w) of base_link in the map at times t (roll and pitch of a tilted
        platform included)."""
        t = np.asarray(t, dtype=np.float64)
        yaw = self.trajectory.sample(t).pose[:, 2]
        if self.habits is None or self.habits.tilt is None:
            return ypr_to_quat(yaw, 0.0, 0.0)
        roll, pitch = self.habits.tilt.angles(t)
        return ypr_to_quat(yaw, pitch, roll)


def generate_scenario(cfg: ScenarioConfig, seed: int) -> Scenario:
    """Draw scenario ``seed`` from ``cfg`` (validated first). Deterministic: same cfg and seed -> same arrays."""
    cfg.validate()
    seed = check_seed(seed)
    dur = float(cfg.duration)
    b = generate_building(cfg.building, rng_for(seed, 'building'), cfg.motion.robot_radius)
    anchors = generate_anchors(cfg.anchors, b, rng_for(seed, 'anchors'))
    real = realism_applies(cfg.realism, seed)
    habits: Habits | None = None
    map_world, mapped, changes = None, None, None
    if real:
        habits = draw_habits(cfg.realism.habits, len(anchors.ids), b.ceiling, dur, rng_for(seed, 'habits'),
                             rng_for(seed, 'keyframes'))
        anchors = apply_to_anchors(anchors, habits)
        cfg = effective_config(cfg, habits)
        if cfg.realism.changes.enabled:
            map_world, b, changes = apply_changes(b, cfg.realism.changes, rng_for(seed, 'changes'))
    s = cfg.sensors
    mrng = rng_for(seed, 'motion')
    mp = draw_motion_params(cfg.motion, mrng, dur)
    traj = plan_trajectory(b.map, b.free_space(cfg.motion.robot_radius + 0.05), mp, dur, mrng)
    people = generate_people(cfg.dynamics, b, dur, rng_for(seed, 'dynamics'))
    need_rays = s.lidar2d.enabled or s.lidar3d.enabled or s.depth.enabled
    rc = Raycaster.from_building(b) if need_rays else None
    see_through = real and cfg.realism.glass_see_through
    tilt = habits.tilt if habits is not None else None
    keyframes = habits.keyframes if habits is not None else None
    streams: dict[str, Any] = {}
    if s.lidar2d.enabled:
        streams['lidar2d'] = simulate_lidar2d(s.lidar2d, traj, rc, people, dur, rng_for(seed, 'lidar2d'), tilt=tilt,
                                              glass_through=glassless_raycaster(b) if see_through else None,
                                              keyframes=keyframes)
    if s.lidar3d.enabled:
        streams['lidar3d'] = simulate_lidar3d(s.lidar3d, traj, rc, people, dur, rng_for(seed, 'lidar3d'), tilt=tilt,
                                              keyframes=keyframes)
    if s.depth.enabled:
        streams['depth'] = simulate_depth(s.depth, traj, rc, people, dur, rng_for(seed, 'depth'), tilt=tilt)
    if s.uwb.enabled:
        streams['uwb'] = simulate_uwb(s.uwb, traj, b, anchors, people, dur, rng_for(seed, 'uwb'), tilt=tilt,
                                      tag_height=habits.tag_height if habits is not None else None,
                                      shared_stamp=habits is not None and habits.uwb_shared_stamp)
    if s.imu.enabled:
        streams['imu'] = simulate_imu(s.imu, traj, dur, rng_for(seed, 'imu'), tilt=tilt)
    if real and cfg.realism.mapping.enabled:
        mapped = simulate_mapping(map_world if map_world is not None else b, cfg.realism.mapping, s.lidar2d,
                                  cfg.motion.robot_radius + 0.05, rng_for(seed, 'mapping'), see_through,
                                  points=s.lidar3d.enabled)
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
    if real:
        params['realism'] = {'habits': habits.to_dict(), 'changes': changes,
                             'mapping': mapped.params if mapped is not None else None}
    return Scenario(seed=seed, config=cfg, building=b, anchors=anchors, motion=mp, trajectory=traj, people=people,
                    streams=streams, ground_truth=gt, name=name, params=_jsonable(params), realism=real,
                    map_world=map_world, mapped=mapped, habits=habits)


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
