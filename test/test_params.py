"""One source of truth for parameters: config/flm.yaml sets exactly the declared parameters of each node."""
import yaml

from conftest import ROOT
from flm_core.config import APPLY, flatten, load_config
from flm_ros import params as P


def test_config_file_matches_the_parameter_tables():
    cfg = yaml.safe_load((ROOT / 'config' / 'flm.yaml').read_text())
    assert list(cfg) == ['/**'], 'only wildcard entries: node-specific ones would outrank launch overrides'
    values = cfg['/**']['ros__parameters']
    assert set(values) == {p.name for p in P.COMMON + P.LOCALIZER}
    for p in P.COMMON + P.LOCALIZER:
        assert p.description, p.name
        assert type(values[p.name]) is type(p.default) or isinstance(p.default, float), p.name


def test_every_number_has_a_range_that_holds_its_default():
    for p in P.COMMON + P.LOCALIZER:
        d = p.descriptor()
        assert d.description == p.description and p.apply in APPLY, p.name
        if isinstance(p.default, bool) or not isinstance(p.default, (int, float)):
            assert not d.floating_point_range and not d.integer_range, p.name
            continue
        assert p.range is not None, f'{p.name} has no range'
        rng = d.integer_range if isinstance(p.default, int) else d.floating_point_range
        assert len(rng) == 1 and rng[0].from_value <= p.default <= rng[0].to_value, p.name
    assert next(p for p in P.LOCALIZER if p.name == 'update_rate').range[0] > 0, 'update_rate <= 0 is refused'


def test_the_filter_settings_are_parameters_with_the_filters_defaults():
    from dataclasses import fields

    from flm_core.estimation.eskf import EskfConfig
    table = {p.name: p for p in P.LOCALIZER}
    for f in fields(EskfConfig):
        if f.name in ('process', 'auto_init'):
            continue
        assert table[f'filter.{f.name}'].default == getattr(EskfConfig(), f.name), f.name
    p = {q.name: q.default for q in P.COMMON + P.LOCALIZER}
    assert load_config({**p, 'filter.gate_prob': 0.99}).pipeline.eskf.gate_prob == 0.99


def test_check_refuses_what_the_library_would_refuse_with_the_reason():
    table = P.COMMON + P.LOCALIZER
    p = {q.name: q.default for q in table}
    assert P.check(p, table) is None
    assert 'pose_source must be one of' in P.check({**p, 'pose_source': 'amcl'}, table)
    assert 'not a valid topic name' in P.check({**p, 'map_topic': ''}, table)
    assert 'not a valid topic name' in P.check({**p, 'sensors.scan.topic': 'my scan'}, table)
    assert 'map_frame must not be empty' in P.check({**p, 'map_frame': ''}, table)
    assert 'device' in P.check({**p, 'device': 'tpu'}, table)
    assert P.check({**p, 'device': 'cuda:1'}, table) is None
    # a value in its range that the library's own checks refuse (TimeBufferConfig, EskfConfig): their message
    assert 'history' in P.check({**p, 'filter.history': 0.0}, table)
    # what may change in which lifecycle state
    q = {x.name: x for x in table}
    assert P.refusal(q['sensors.scan.topic'], configured=True, active=True) is not None
    assert P.refusal(q['sensors.scan.topic'], configured=True, active=False) is None
    assert 'cleanup' in P.refusal(q['site_file'], configured=True, active=False).replace('clean up', 'cleanup')
    assert P.refusal(q['site_file'], configured=False, active=False) is None
    assert P.refusal(q['buffer.window'], configured=True, active=True) is None


def test_a_nav2_amcl_parameter_file_gives_the_same_values_offline(tmp_path):
    """from_yaml (offline tools) reads AMCL's names, nested initial_pose, and resolves topics as a node in the
    root namespace does."""
    f = tmp_path / 'nav2.yaml'
    f.write_text('flm_localizer:\n  ros__parameters:\n    global_frame_id: world\n    scan_topic: front/scan\n'
                 '    initial_pose: {x: 1.5, y: -2.0, z: 0.0, yaw: 0.5}\n    alpha1: 0.2\n'
                 '    robot_model_type: nav2_amcl::OmniMotionModel\n')
    table = P.COMMON + P.LOCALIZER
    p = P.from_yaml(str(f), 'flm_localizer', table)
    assert p['map_frame'] == 'world' and p['sensors.scan.topic'] == '/front/scan'
    assert (p['initial_pose.x'], p['initial_pose.y'], p['initial_pose.yaw']) == (1.5, -2.0, 0.5)
    assert p['sensors.imu.topic'] == '/imu/data' and p['pose_topic'] == '/amcl_pose'
    assert 'alpha1' not in p and 'robot_model_type' not in p
    assert p['robot_model'] == 'omnidirectional'                 # AMCL's motion model plugin, translated
    f.write_text(f.read_text() + '    robot_model: differential\n')
    assert P.from_yaml(str(f), 'flm_localizer', table)['robot_model'] == 'omnidirectional'   # AMCL's name wins
    assert P.amcl_robot_model('nav2_amcl::DifferentialMotionModel') == 'differential'
    assert P.amcl_robot_model('my_pkg::AckermannModel') is None


def test_the_nav2_swap_file_sets_only_declared_parameters_and_amcl_names():
    cfg = yaml.safe_load((ROOT / 'config' / 'nav2_localization.yaml').read_text())
    section = flatten(cfg['flm_localizer']['ros__parameters'])
    declared = {p.name for p in P.COMMON + P.LOCALIZER}
    assert set(section) <= declared | set(P.AMCL_ALIASES), set(section) - declared - set(P.AMCL_ALIASES)
    assert set(P.AMCL_ALIASES.values()) <= declared
    assert not set(P.AMCL_ALIASES) & declared and not set(P.AMCL_WITHOUT_MEANING) & declared


def test_several_topics_per_kind_are_string_arrays_checked_with_a_reason(tmp_path):
    """Several lidars (scan, points) and UWB tags: sensors.<kind>.extra_topics; each further UWB topic names its
    tag's frame in sensors.uwb.extra_tag_frames; not for IMU, odometry or the depth camera."""
    table = P.COMMON + P.LOCALIZER
    q = {x.name: x for x in table}
    assert {n for n in q if n.endswith('extra_topics')} == {f'sensors.{k}.extra_topics' for k in P.MULTI_TOPIC}
    assert set(P.MULTI_TOPIC) == {'scan', 'points', 'uwb'}
    assert q['sensors.uwb.extra_tag_frames'].default == [] and q['sensors.scan.extra_topics'].apply == P.ACTIVATE
    p = {x.name: x.default for x in table}
    ok = {**p, 'sensors.scan.extra_topics': ['rear/scan'], 'sensors.uwb.extra_topics': ['uwb/tag1/ranges'],
          'sensors.uwb.extra_tag_frames': ['uwb_tag1']}
    assert P.check(ok, table) is None
    assert "'rear scan' is not a valid topic name" in P.check({**ok, 'sensors.scan.extra_topics': ['rear scan']},
                                                              table)
    assert 'given twice' in P.check({**ok, 'sensors.scan.extra_topics': ['scan']}, table)
    assert 'must be a list of strings' in P.check({**ok, 'sensors.points.extra_topics': 'rear/points'}, table)
    why = P.check({**ok, 'sensors.uwb.extra_tag_frames': []}, table)
    assert 'extra_tag_frames must name the tag frame of each topic' in why and '1 topics' in why, why
    assert 'must not be empty' in P.check({**ok, 'sensors.uwb.extra_tag_frames': ['']}, table)
    assert 'a tag of its own' in P.check({**ok, 'sensors.uwb.extra_tag_frames': ['uwb_tag']}, table)
    # offline tools: resolved as the node resolves them; a file's `[]` is an empty list
    f = tmp_path / 'p.yaml'
    f.write_text('/**:\n  ros__parameters:\n    sensors.scan.extra_topics: [rear/scan, /side/scan]\n'
                 '    sensors.uwb.extra_topics: []\n')
    got = P.from_yaml(str(f), 'flm_localizer', table)
    assert got['sensors.scan.extra_topics'] == ['/rear/scan', '/side/scan'] and got['sensors.uwb.extra_topics'] == []
