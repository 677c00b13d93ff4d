"""Configuration of scenario generation: every distribution parameter of every dimension, with defaults.

Conventions: a ``Range`` ``(lo, hi)`` means "drawn uniformly in [lo, hi] once per scenario" (``lo == hi`` fixes the
value); integer ranges are inclusive. Units are SI (m, s, rad, Hz); poses follow REP-103 (x forward, y left, z up).
``ScenarioConfig.to_dict()`` records all of it (the manifest stores it); ``ScenarioConfig.from_dict()`` reads it back.
Bad values raise :class:`ConfigError` naming the parameter (dotted path, e.g. ``sensors.imu.rate``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

Range = tuple[float, float]
IntRange = tuple[int, int]

FAMILIES = ('office', 'corridor', 'hall', 'warehouse', 'cluttered')
REALISM_APPLY = ('never', 'evaluation', 'always')
ANCHOR_LAYOUTS = ('corners', 'ceiling', 'poor', 'clustered', 'random')
ROBOTS = ('diff_drive', 'holonomic')
#: The localizer's ``robot_model`` (flm_core.estimation.course.ROBOT_MODELS) of each generated robot.
ROBOT_MODEL = {'diff_drive': 'differential', 'holonomic': 'omnidirectional'}
SENSORS = ('lidar2d', 'lidar3d', 'depth', 'uwb', 'imu', 'odom')


class ConfigError(ValueError):
    """An impossible generation parameter; the message starts with the parameter's dotted name."""


@dataclass
class Mount:
    """Sensor pose on the robot, in base_link (m, rad; rotation R = Rz(yaw) Ry(pitch) Rx(roll)). Only the IMU may
    be rolled or pitched (e.g. ``roll = pi``: mounted z-down); the ray-cast sensors and the UWB tag are level."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0


@dataclass
class BuildingConfig:
    families: tuple[str, ...] = FAMILIES          # drawn uniformly among these
    size_x: Range | None = None                   # m; None = the family's default range (buildings.FAMILY_SIZES)
    size_y: Range | None = None
    resolution: float = 0.05                      # m per occupancy cell
    ceiling_height: Range | None = None           # m; None = family default
    interior_wall_thickness: Range = (0.08, 0.15)
    exterior_wall_thickness: Range = (0.2, 0.4)
    glass_wall_prob: float = 0.2                  # per interior wall (office/corridor)
    furniture_density: Range = (0.02, 0.06)       # fraction of floor covered by furniture/clutter
    door_width: Range = (0.9, 1.2)


@dataclass
class AnchorConfig:
    count: IntRange = (4, 8)                      # inclusive; 3..16
    layouts: tuple[str, ...] = ANCHOR_LAYOUTS
    wall_height: Range = (1.8, 2.6)               # m, wall-mounted anchors
    bias_sigma: float = 0.05                      # m, per-anchor range bias ~ N(0, sigma)
    known_bias: bool = False                      # write the true bias into the site file


@dataclass
class MotionConfig:
    robots: tuple[str, ...] = ROBOTS
    robot_radius: float = 0.25                    # m, circular footprint (clearance kept from obstacles)
    max_speed: Range = (0.4, 1.2)                 # m/s
    max_accel: Range = (0.3, 1.0)                 # m/s^2
    max_yaw_rate: Range = (0.5, 1.5)              # rad/s
    max_yaw_accel: Range = (1.0, 3.0)             # rad/s^2
    stop_prob: float = 0.15                       # per waypoint
    stop_duration: Range = (0.5, 4.0)             # s
    spin_prob: float = 0.05                       # per waypoint: a full turn in place
    revisit_prob: float = 0.2                     # per waypoint: go back to a visited place
    far_bias: float = 1.0                         # waypoint choice weight ~ distance**far_bias (long runs)
    kidnap_prob: float = 0.2                      # per scenario: contains teleport(s)
    kidnap_interval: float = 300.0                # s, mean time between kidnaps in a kidnap scenario


@dataclass
class SensorConfig:
    enabled: bool = True
    rate: float = 10.0                            # Hz
    latency: Range = (0.005, 0.03)                # s, acquisition -> arrival (bag receive time)
    latency_jitter: float = 0.002                 # s, std of extra positive arrival delay
    clock_offset_sigma: float = 0.005             # s, sensor clock offset ~ N(0, sigma), constant per scenario
    stamp_jitter: float = 0.0005                  # s, std of header stamp noise
    dropout: float = 0.005                        # probability that a message is lost
    mount: Mount = field(default_factory=Mount)
    frame_id: str = ''


@dataclass
class Lidar2DConfig(SensorConfig):
    beams: int = 360                              # 90..2048
    fov: float = 2 * math.pi                      # rad, centred on the mount's x axis
    range_min: float = 0.1
    range_max: float = 20.0
    range_noise: Range = (0.005, 0.02)            # m, Gaussian std
    missing_prob: float = 0.005                   # random missing return (reported +inf)
    glass_miss_prob: float = 0.7                  # return lost on glass
    dark_miss_prob: float = 0.4                   # return lost on dark surfaces
    mount: Mount = field(default_factory=lambda: Mount(0.1, 0.0, 0.3, 0.0))
    frame_id: str = 'laser'


@dataclass
class Lidar3DConfig(SensorConfig):
    enabled: bool = False
    rings: int = 16
    beams: int = 360                              # per ring per revolution
    vfov: Range = (-0.2618, 0.2618)               # rad, lowest and highest ring elevation
    range_min: float = 0.3
    range_max: float = 30.0
    range_noise: Range = (0.01, 0.03)
    missing_prob: float = 0.01
    mount: Mount = field(default_factory=lambda: Mount(0.0, 0.0, 0.6, 0.0))
    frame_id: str = 'lidar3d'


@dataclass
class DepthConfig(SensorConfig):
    enabled: bool = False
    rate: float = 10.0
    width: int = 64
    height: int = 48
    hfov: float = 1.2                             # rad
    range_min: float = 0.2
    range_max: float = 8.0
    noise_coeff: Range = (0.001, 0.003)           # depth std = coeff * z^2 (m)
    missing_prob: float = 0.01
    mount: Mount = field(default_factory=lambda: Mount(0.15, 0.0, 0.5, 0.0))
    frame_id: str = 'camera_depth_optical_frame'


@dataclass
class UwbConfig(SensorConfig):
    rate: float = 10.0                            # epochs per second (each epoch ranges every anchor once)
    los_sigma: Range = (0.03, 0.1)                # m, line-of-sight Gaussian noise
    nlos_sigma: float = 0.15                      # m, extra noise std when NLOS
    nlos_bias_scale: float = 1.0                  # multiplies the materials' per-wall bias
    multipath_prob: float = 0.01                  # outlier probability per range
    multipath_bias: Range = (0.3, 3.0)            # m, outlier size
    person_bias: Range = (0.1, 0.4)               # m, body blocking the line of sight
    person_block_prob: float = 0.3                # a body on the line of sight drops the range
    attenuation_budget: float = 25.0              # dB; links attenuated more than this are blocked
    max_range: float = 60.0
    mount: Mount = field(default_factory=lambda: Mount(0.0, 0.0, 0.8, 0.0))
    frame_id: str = 'uwb_tag'


@dataclass
class ImuConfig(SensorConfig):
    rate: float = 200.0                           # Hz, 100..400 realistic
    latency: Range = (0.001, 0.005)
    gyro_noise_density: Range = (1e-4, 3e-4)      # rad/s/sqrt(Hz)
    accel_noise_density: Range = (1e-3, 3e-3)     # m/s^2/sqrt(Hz)
    gyro_bias_rw: float = 2e-5                    # rad/s^2/sqrt(Hz)
    accel_bias_rw: float = 3e-4                   # m/s^3/sqrt(Hz)
    gyro_bias_sigma: float = 2e-3                 # rad/s, initial bias std
    accel_bias_sigma: float = 0.03                # m/s^2
    scale_sigma: float = 0.005                    # relative scale error std
    gravity: float = 9.80665
    dropout: float = 0.0
    mount: Mount = field(default_factory=lambda: Mount(0.0, 0.0, 0.2, 0.0))
    frame_id: str = 'imu_link'


@dataclass
class OdomConfig(SensorConfig):
    rate: float = 50.0
    latency: Range = (0.001, 0.01)
    track_width: float = 0.4                      # m, nominal (diff drive)
    scale_sigma: float = 0.02                     # relative wheel scale error std
    track_sigma: float = 0.02                     # relative track-width error std
    wheel_noise: float = 0.01                     # relative per-sample wheel speed noise
    slip_rate: float = 0.02                       # slip events per second
    slip_magnitude: Range = (0.05, 0.3)           # fraction of wheel speed lost/gained during a slip
    slip_duration: Range = (0.2, 1.0)             # s
    dropout: float = 0.0
    frame_id: str = 'odom'                        # child frame is base_link


@dataclass
class SensorsConfig:
    lidar2d: Lidar2DConfig = field(default_factory=Lidar2DConfig)
    lidar3d: Lidar3DConfig = field(default_factory=Lidar3DConfig)
    depth: DepthConfig = field(default_factory=DepthConfig)
    uwb: UwbConfig = field(default_factory=UwbConfig)
    imu: ImuConfig = field(default_factory=ImuConfig)
    odom: OdomConfig = field(default_factory=OdomConfig)

    def enabled(self) -> list[str]:
        return [n for n in SENSORS if getattr(self, n).enabled]


@dataclass
class DynamicsConfig:
    people: IntRange = (0, 3)                     # inclusive
    speed: Range = (0.5, 1.4)                     # m/s
    radius: float = 0.25                          # m
    height: float = 1.75                          # m


@dataclass
class MappingConfig:
    """Map-world mismatch, part 1: the site map is built by a simulated mapping run (mapping.py) instead of being
    the exact geometry. 2D scans from keyframes on a lattice over the free space are inserted into an occupancy grid
    at poses carrying SLAM error: a smooth warp of the whole map (drift left after loop closure: a random field of
    std ``drift_sigma`` m / ``drift_yaw_sigma`` rad and correlation length ``drift_length`` m) plus per-keyframe
    jitter; hit counts are blurred by ``blur`` cells and thresholded like map_server (``occupied_thresh``,
    ``free_thresh`` on hits / (hits + pass-throughs)); cells no ray reached stay unknown (-1)."""

    enabled: bool = True
    spacing: float = 1.5                          # m between mapping keyframes
    beams: int = 360
    range_max: float = 12.0                       # m; longer returns are not inserted
    range_noise: float = 0.01                     # m, std
    drift_sigma: float = 0.05                     # m
    drift_yaw_sigma: float = 0.005                # rad
    drift_length: float = 15.0                    # m
    jitter: float = 0.02                          # m, per keyframe, std
    jitter_yaw: float = 0.004                     # rad, per keyframe, std
    blur: float = 0.5                             # cells, Gaussian std applied to the hit counts
    occupied_thresh: float = 0.65
    free_thresh: float = 0.196


@dataclass
class ChangesConfig:
    """Map-world mismatch, part 2: the world changed after mapping (changes.py). Furniture (movable boxes) moved,
    removed or added; doors (gaps in walls) closed at mapping time and/or at run time, drawn independently."""

    enabled: bool = True
    move_prob: float = 0.15                       # per movable box
    move_distance: Range = (0.3, 1.5)             # m
    remove_prob: float = 0.1                      # per movable box
    add_count: IntRange = (1, 4)                  # new objects (boxes, carts, pallets)
    add_size: Range = (0.3, 1.2)                  # m, side length
    add_height: Range = (0.4, 1.5)                # m
    door_closed_mapping: float = 0.3              # probability a door was closed during the mapping run
    door_closed_run: float = 0.3                  # probability a door is closed at run time


@dataclass
class HabitsConfig:
    """Real-world sensor habits (drawn per scenario from their own seeded stream; probabilities are per scenario)."""

    uwb_shared_stamp: bool = True                 # one header stamp per ranging frame (stamped when the frame ends)
    anchor_bias: Range | None = (-0.2, 0.3)       # m, per-anchor constant range bias ~ U(lo, hi), both signs when
    #                                               lo < 0 < hi; None keeps anchors.bias_sigma
    coplanar_anchor_prob: float = 0.5             # all anchors at one height
    coplanar_height: Range = (0.8, 2.5)           # m, that height
    tilt_prob: float = 0.5                        # base_link rolls and pitches over time
    tilt_max: Range = (0.01, 0.05)                # rad, bound of roll and pitch
    tilt_hz: float = 0.5                          # highest frequency of the tilt motion
    imu_z_down_prob: float = 0.5                  # IMU mounted upside down (roll = pi about its x axis)
    tag_height_prob: float = 0.5                  # the UWB tag moves up and down (hand-held / flying tag)
    tag_height: Range = (0.3, 2.0)                # m, range of the tag's height in base_link
    tag_height_hz: float = 0.2                    # highest frequency of the tag's height motion
    keyframe_interval: float = 0.0                # s; > 0: lidar scans only at keyframes about this far apart
    keyframe_gap_prob: float = 0.05               # per keyframe: a longer gap follows
    keyframe_gap: Range = (5.0, 14.0)             # s, length of such a gap


@dataclass
class RealismConfig:
    """Dimensions that make generated data look like a real deployment. ``apply``: to which seeds they apply:
    'evaluation' (default: the reserved evaluation seeds, i.e. benchmarks and evaluation bags; training seeds keep
    the exact world), 'always' (training shards too), 'never'. ``people`` replaces ``dynamics.people`` where it
    applies (people present at run time are never in the map)."""

    apply: str = 'evaluation'
    people: IntRange | None = (1, 4)
    glass_see_through: bool = True                # a lidar beam lost on glass goes on and hits what is behind
    mapping: MappingConfig = field(default_factory=MappingConfig)
    changes: ChangesConfig = field(default_factory=ChangesConfig)
    habits: HabitsConfig = field(default_factory=HabitsConfig)


@dataclass
class TopicNames:
    scan: str = '/scan'
    points: str = '/points'
    depth: str = '/camera/depth/image_raw'
    camera_info: str = '/camera/depth/camera_info'
    uwb: str = '/uwb/ranges'
    imu: str = '/imu/data'
    odom: str = '/odom'
    tf: str = '/tf'
    tf_static: str = '/tf_static'
    map: str = '/map'
    ground_truth: str = '/ground_truth/pose'


@dataclass
class ScenarioConfig:
    """Everything that defines the distribution of scenarios; one ``seed`` draws one scenario from it."""

    duration: float = 60.0                        # s of simulated time
    building: BuildingConfig = field(default_factory=BuildingConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    sensors: SensorsConfig = field(default_factory=SensorsConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    ground_truth_rate: float = 50.0               # Hz, ground-truth poses in shards and bags
    realism: RealismConfig = field(default_factory=RealismConfig)
    window: float = 10.0                          # s, training window length
    stride: float = 10.0                          # s, between window starts
    topics: TopicNames = field(default_factory=TopicNames)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScenarioConfig:
        return _from_dict(cls, d, '')

    # ------------------------------------------------------------------ validation
    def validate(self) -> ScenarioConfig:
        """Raise :class:`ConfigError` naming the first impossible parameter; returns self."""
        _pos(self.duration, 'duration')
        _pos(self.ground_truth_rate, 'ground_truth_rate')
        _pos(self.window, 'window')
        _pos(self.stride, 'stride')
        b = self.building
        _choices(b.families, FAMILIES, 'building.families')
        _pos(b.resolution, 'building.resolution')
        if b.resolution > 0.5:
            raise ConfigError(f'building.resolution: must be <= 0.5 m, got {b.resolution}')
        for name in ('size_x', 'size_y'):
            r = getattr(b, name)
            if r is not None:
                _range(r, f'building.{name}', positive=True)
                if r[0] < 4 * self.motion.robot_radius + 1.0:
                    raise ConfigError(f'building.{name}: {r[0]} m is too small for a robot of radius '
                                      f'{self.motion.robot_radius} m (motion.robot_radius); need at least '
                                      f'{4 * self.motion.robot_radius + 1.0:.2f} m')
                if r[1] > 400:
                    raise ConfigError(f'building.{name}: at most 400 m, got {r[1]}')
        if b.ceiling_height is not None:
            _range(b.ceiling_height, 'building.ceiling_height', positive=True)
        _range(b.interior_wall_thickness, 'building.interior_wall_thickness', positive=True)
        _range(b.exterior_wall_thickness, 'building.exterior_wall_thickness', positive=True)
        _range(b.furniture_density, 'building.furniture_density')
        _range(b.door_width, 'building.door_width', positive=True)
        if b.door_width[0] < 2 * self.motion.robot_radius + 0.1:
            raise ConfigError(f'building.door_width: {b.door_width[0]} m doors are too narrow for a robot of radius '
                              f'{self.motion.robot_radius} m (motion.robot_radius)')
        _prob(b.glass_wall_prob, 'building.glass_wall_prob')
        a = self.anchors
        _choices(a.layouts, ANCHOR_LAYOUTS, 'anchors.layouts')
        if len(a.count) != 2 or a.count[0] > a.count[1]:
            raise ConfigError(f'anchors.count: must be (lo, hi) with lo <= hi, got {a.count}')
        if self.sensors.uwb.enabled and a.count[0] < 3:
            raise ConfigError(f'anchors.count: UWB is enabled (sensors.uwb.enabled) but anchors.count allows '
                              f'{a.count[0]} anchors; need at least 3 (or disable UWB)')
        if a.count[1] > 64:
            raise ConfigError(f'anchors.count: at most 64 anchors, got {a.count[1]}')
        _range(a.wall_height, 'anchors.wall_height', positive=True)
        _nonneg(a.bias_sigma, 'anchors.bias_sigma')
        m = self.motion
        _choices(m.robots, ROBOTS, 'motion.robots')
        _pos(m.robot_radius, 'motion.robot_radius')
        for name in ('max_speed', 'max_accel', 'max_yaw_rate', 'max_yaw_accel'):
            _range(getattr(m, name), f'motion.{name}', positive=True)
        _range(m.stop_duration, 'motion.stop_duration')
        for name in ('stop_prob', 'spin_prob', 'revisit_prob', 'kidnap_prob'):
            _prob(getattr(m, name), f'motion.{name}')
        _pos(m.kidnap_interval, 'motion.kidnap_interval')
        _nonneg(m.far_bias, 'motion.far_bias')
        s = self.sensors
        for name in SENSORS:
            sc: SensorConfig = getattr(s, name)
            p = f'sensors.{name}'
            _pos(sc.rate, f'{p}.rate')
            _range(sc.latency, f'{p}.latency')
            for f_ in ('latency_jitter', 'clock_offset_sigma', 'stamp_jitter'):
                _nonneg(getattr(sc, f_), f'{p}.{f_}')
            _prob(sc.dropout, f'{p}.dropout')
            if not sc.frame_id:
                raise ConfigError(f'{p}.frame_id: must be a non-empty frame name')
        l2 = s.lidar2d
        if not 90 <= l2.beams <= 2048:
            raise ConfigError(f'sensors.lidar2d.beams: must be in [90, 2048], got {l2.beams}')
        if not 0 < l2.fov <= 2 * math.pi + 1e-9:
            raise ConfigError(f'sensors.lidar2d.fov: must be in (0, 2*pi], got {l2.fov}')
        for sc, p in ((l2, 'sensors.lidar2d'), (s.lidar3d, 'sensors.lidar3d'), (s.depth, 'sensors.depth')):
            _nonneg(sc.range_min, f'{p}.range_min')
            if not sc.range_max > sc.range_min:
                raise ConfigError(f'{p}.range_max: must be > range_min ({sc.range_min}), got {sc.range_max}')
        _range(l2.range_noise, 'sensors.lidar2d.range_noise')
        for f_ in ('missing_prob', 'glass_miss_prob', 'dark_miss_prob'):
            _prob(getattr(l2, f_), f'sensors.lidar2d.{f_}')
        l3 = s.lidar3d
        if not 1 <= l3.rings <= 256:
            raise ConfigError(f'sensors.lidar3d.rings: must be in [1, 256], got {l3.rings}')
        if not 8 <= l3.beams <= 4096:
            raise ConfigError(f'sensors.lidar3d.beams: must be in [8, 4096], got {l3.beams}')
        if not -math.pi / 2 < l3.vfov[0] <= l3.vfov[1] < math.pi / 2:
            raise ConfigError(f'sensors.lidar3d.vfov: must be (lo, hi) within (-pi/2, pi/2), got {l3.vfov}')
        d = s.depth
        if not (4 <= d.width <= 1280 and 4 <= d.height <= 960):
            raise ConfigError(f'sensors.depth.width/height: must be within 4..1280 x 4..960, got {d.width}x{d.height}')
        if not 0 < d.hfov < math.pi:
            raise ConfigError(f'sensors.depth.hfov: must be in (0, pi), got {d.hfov}')
        u = s.uwb
        _range(u.los_sigma, 'sensors.uwb.los_sigma')
        _nonneg(u.nlos_sigma, 'sensors.uwb.nlos_sigma')
        _prob(u.multipath_prob, 'sensors.uwb.multipath_prob')
        _prob(u.person_block_prob, 'sensors.uwb.person_block_prob')
        _pos(u.max_range, 'sensors.uwb.max_range')
        i = s.imu
        for f_ in ('gyro_noise_density', 'accel_noise_density'):
            _range(getattr(i, f_), f'sensors.imu.{f_}')
        for f_ in ('gyro_bias_rw', 'accel_bias_rw', 'gyro_bias_sigma', 'accel_bias_sigma', 'scale_sigma'):
            _nonneg(getattr(i, f_), f'sensors.imu.{f_}')
        o = s.odom
        _pos(o.track_width, 'sensors.odom.track_width')
        for f_ in ('scale_sigma', 'track_sigma', 'wheel_noise', 'slip_rate'):
            _nonneg(getattr(o, f_), f'sensors.odom.{f_}')
        dy = self.dynamics
        if len(dy.people) != 2 or not 0 <= dy.people[0] <= dy.people[1]:
            raise ConfigError(f'dynamics.people: must be (lo, hi) with 0 <= lo <= hi, got {dy.people}')
        _range(dy.speed, 'dynamics.speed', positive=True)
        _pos(dy.radius, 'dynamics.radius')
        _pos(dy.height, 'dynamics.height')
        for name in SENSORS:
            m = getattr(s, name).mount
            for f_ in ('x', 'y', 'z', 'yaw', 'roll', 'pitch'):
                _num(getattr(m, f_), f'sensors.{name}.mount.{f_}')
            if name != 'imu' and (m.roll != 0 or m.pitch != 0):
                raise ConfigError(f'sensors.{name}.mount.roll/pitch: only the IMU may be mounted rolled or pitched; '
                                  f'got roll {m.roll}, pitch {m.pitch}')
        self._validate_realism()
        return self

    def _validate_realism(self) -> None:
        r = self.realism
        if r.apply not in REALISM_APPLY:
            raise ConfigError(f'realism.apply: must be one of {list(REALISM_APPLY)}, got {r.apply!r}')
        if r.people is not None and (len(r.people) != 2 or not 0 <= r.people[0] <= r.people[1]):
            raise ConfigError(f'realism.people: must be (lo, hi) with 0 <= lo <= hi, or null, got {r.people}')
        mp_ = r.mapping
        _pos(mp_.spacing, 'realism.mapping.spacing')
        if mp_.spacing < self.building.resolution:
            raise ConfigError(f'realism.mapping.spacing: must be >= building.resolution ({self.building.resolution} '
                              f'm), got {mp_.spacing}')
        if not 16 <= mp_.beams <= 4096:
            raise ConfigError(f'realism.mapping.beams: must be in [16, 4096], got {mp_.beams}')
        _pos(mp_.range_max, 'realism.mapping.range_max')
        for f_ in ('range_noise', 'drift_sigma', 'drift_yaw_sigma', 'jitter', 'jitter_yaw', 'blur'):
            _nonneg(getattr(mp_, f_), f'realism.mapping.{f_}')
        _pos(mp_.drift_length, 'realism.mapping.drift_length')
        _prob(mp_.occupied_thresh, 'realism.mapping.occupied_thresh')
        _prob(mp_.free_thresh, 'realism.mapping.free_thresh')
        if not mp_.free_thresh < mp_.occupied_thresh:
            raise ConfigError(f'realism.mapping.free_thresh: must be < occupied_thresh ({mp_.occupied_thresh}), '
                              f'got {mp_.free_thresh}')
        c = r.changes
        for f_ in ('move_prob', 'remove_prob', 'door_closed_mapping', 'door_closed_run'):
            _prob(getattr(c, f_), f'realism.changes.{f_}')
        _range(c.move_distance, 'realism.changes.move_distance')
        if len(c.add_count) != 2 or not 0 <= c.add_count[0] <= c.add_count[1]:
            raise ConfigError(f'realism.changes.add_count: must be (lo, hi) with 0 <= lo <= hi, got {c.add_count}')
        _range(c.add_size, 'realism.changes.add_size', positive=True)
        _range(c.add_height, 'realism.changes.add_height', positive=True)
        h = r.habits
        if h.anchor_bias is not None:
            if not isinstance(h.anchor_bias, (tuple, list)) or len(h.anchor_bias) != 2 \
                    or _num(h.anchor_bias[0], 'realism.habits.anchor_bias') > _num(h.anchor_bias[1],
                                                                                  'realism.habits.anchor_bias'):
                raise ConfigError(f'realism.habits.anchor_bias: must be (lo, hi) with lo <= hi, or null, '
                                  f'got {h.anchor_bias!r}')
        for f_ in ('coplanar_anchor_prob', 'tilt_prob', 'imu_z_down_prob', 'tag_height_prob', 'keyframe_gap_prob'):
            _prob(getattr(h, f_), f'realism.habits.{f_}')
        _range(h.coplanar_height, 'realism.habits.coplanar_height', positive=True)
        _range(h.tilt_max, 'realism.habits.tilt_max')
        if h.tilt_max[1] > 0.5:
            raise ConfigError(f'realism.habits.tilt_max: at most 0.5 rad, got {h.tilt_max}')
        _range(h.tag_height, 'realism.habits.tag_height', positive=True)
        _pos(h.tilt_hz, 'realism.habits.tilt_hz')
        _pos(h.tag_height_hz, 'realism.habits.tag_height_hz')
        _nonneg(h.keyframe_interval, 'realism.habits.keyframe_interval')
        _range(h.keyframe_gap, 'realism.habits.keyframe_gap')


# ---------------------------------------------------------------------------------------------- helpers
def _num(x: Any, name: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ConfigError(f'{name}: must be a number, got {x!r}') from None
    if not math.isfinite(v):
        raise ConfigError(f'{name}: must be finite, got {x!r}')
    return v


def _pos(x: Any, name: str) -> None:
    if _num(x, name) <= 0:
        raise ConfigError(f'{name}: must be > 0, got {x!r}')


def _nonneg(x: Any, name: str) -> None:
    if _num(x, name) < 0:
        raise ConfigError(f'{name}: must be >= 0, got {x!r}')


def _prob(x: Any, name: str) -> None:
    if not 0.0 <= _num(x, name) <= 1.0:
        raise ConfigError(f'{name}: must be a probability in [0, 1], got {x!r}')


def _range(r: Any, name: str, *, positive: bool = False) -> None:
    if not isinstance(r, (tuple, list)) or len(r) != 2:
        raise ConfigError(f'{name}: must be a (lo, hi) pair, got {r!r}')
    lo, hi = _num(r[0], name), _num(r[1], name)
    if lo > hi:
        raise ConfigError(f'{name}: lo must be <= hi, got {r!r}')
    if lo < 0 or (positive and lo <= 0):
        raise ConfigError(f'{name}: must be {"> 0" if positive else ">= 0"}, got {r!r}')


def _choices(values: Any, allowed: tuple[str, ...], name: str) -> None:
    if not values:
        raise ConfigError(f'{name}: must name at least one of {list(allowed)}')
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ConfigError(f'{name}: unknown {bad}; expected some of {list(allowed)}')


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _from_dict(cls: type, d: Any, path: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f'{path or "config"}: expected a mapping, got {type(d).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f'{path + "." if path else ""}{unknown[0]}: unknown parameter; expected one of {sorted(fields)}')
    kw = {}
    defaults = cls()
    for k, v in d.items():
        cur = getattr(defaults, k)
        p = f'{path}.{k}' if path else k
        if dataclasses.is_dataclass(cur):
            kw[k] = _from_dict(type(cur), v, p)
        elif isinstance(cur, tuple) or (cur is None and isinstance(v, list)):
            kw[k] = tuple(v) if isinstance(v, (list, tuple)) else v
        else:
            kw[k] = v
    return cls(**kw)
