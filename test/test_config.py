"""The core's typed configuration (flm_core.config): one loader for defaults, parameter files, values and overrides,
with checks that name the parameter, and factories that build what the node and flm-eval run."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from flm_core import config as C
from flm_core.estimation.baselines import UwbPoseSource
from flm_core.estimation.eskf import EskfConfig
from flm_core.frontend import STREAMS
from flm_core.model.inference import PassOptions
from flm_core.pipeline import PipelineConfig
from flm_core.site import Anchor, Site
from flm_core.timebuffer import TimeBufferConfig

SITE = Site(name='two_anchors', anchors=(Anchor('a0', np.array([0.0, 0.0, 2.5])),
                                         Anchor('a1', np.array([8.0, 0.0, 2.5]))))


def test_defaults_are_the_tables_and_the_library_classes():
    cfg = C.load_config()
    assert C.to_values(cfg) == C.defaults() == {p.name: p.default for p in C.CORE}
    # the settings of the library's own classes take their defaults from them: one source
    assert cfg.buffer == TimeBufferConfig() and cfg.pipeline == PipelineConfig()
    assert cfg.pipeline.eskf == EskfConfig()
    assert cfg.sensors.enabled == STREAMS and cfg.sensors.uwb.tag_height == -1.0
    assert (cfg.model.pose_source, cfg.model.backend) == ('flm', 'auto')
    assert dataclasses.asdict(PassOptions()) == {k: getattr(cfg.model, k) for k in dataclasses.asdict(PassOptions())}
    assert cfg.frames == C.FramesConfig(map='map', odom='odom', base='base_link')
    # frozen all the way down
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.iterations = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.pipeline.eskf.gate_prob = 0.5  # type: ignore[misc]
    # every core parameter sets one field, and no two the same
    targets = [p.target for p in C.CORE]
    assert None not in targets and len(set(targets)) == len(targets)


def test_values_and_overrides_set_the_typed_fields_in_order(tmp_path: Path):
    f = tmp_path / 'params.yaml'
    f.write_text(yaml.safe_dump({
        '/**': {'ros__parameters': {'buffer': {'window': 3}, 'model.iterations': 4, 'filter.gate_prob': 0.9}},
        'flm_localizer': {'ros__parameters': {'model.iterations': 5, 'topic_of_a_node': 'x'}},
        'other_node': {'ros__parameters': {'model.iterations': 9}}}))
    cfg = C.load_config(yaml_file=f)
    assert cfg.buffer.window == 3.0 and isinstance(cfg.buffer.window, float)   # nested mapping; int for a float
    assert cfg.model.iterations == 5                                            # the node's section over /**
    assert cfg.pipeline.eskf.gate_prob == 0.9
    cfg = C.load_config({'model.iterations': 6, 'sensors.depth.enabled': False, 'pose_topic': 'ignored'},
                        yaml_file=f, overrides={'model.iterations': 7, 'sensors.uwb.tag_height': 0.8})
    assert cfg.model.iterations == 7 and cfg.sensors.uwb.tag_height == 0.8
    assert cfg.sensors.enabled == ('scan', 'points', 'uwb', 'imu', 'odom')
    assert cfg.buffer.window == 3.0                                             # the file's, under the values


@pytest.mark.parametrize('overrides, words', [
    ({'buffer.window': 100.0}, ('buffer.window', 'out of range [0.05, 60.0]')),
    ({'model.iterations': 0}, ('model.iterations', 'out of range')),
    ({'pose_source': 'amcl'}, ('pose_source must be one of flm, icp',)),
    ({'inference_backend': 'tensorrt'}, ('inference_backend must be one of auto, torch, onnx',)),
    ({'filter.process': 'ekf'}, ('filter.process must be one of',)),
    ({'model.iterations': 2.5}, ('model.iterations', 'not an integer')),
    ({'fp16': 'yes'}, ('fp16', 'not true or false')),
    ({'buffer.window': float('nan')}, ('buffer.window', 'finite number')),
    ({'base_frame': '/'}, ('base_frame must not be empty',)),
    ({'device': 'tpu'}, ('device must be',)),                   # the back ends' own check
    ({'buffer.windw': 2.0}, ('buffer.windw', 'not a parameter')),
    ({'refine.uwb_sigma': 0.0}, ('refine.uwb_sigma', 'out of range')),
    ({'refine.min_inlier_share': 1.5}, ('refine.min_inlier_share', 'out of range')),
])
def test_a_bad_value_is_refused_naming_the_parameter(overrides, words):
    with pytest.raises(C.ConfigError) as e:
        C.load_config(overrides=overrides)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_bad_value_in_a_file_is_refused_too(tmp_path: Path):
    f = tmp_path / 'bad.yaml'
    f.write_text('/**:\n  ros__parameters:\n    filter.gate_prob: 1.5\n')
    with pytest.raises(C.ConfigError, match=r'filter.gate_prob: 1.5 is out of range \[0.0, 1.0\]'):
        C.load_config(yaml_file=f)
    with pytest.raises(C.ConfigError, match='missing.yaml'):
        C.load_config(yaml_file=tmp_path / 'missing.yaml')
    f.write_text('- a list\n')
    with pytest.raises(C.ConfigError, match='expected a mapping'):
        C.load_config(yaml_file=f)


def test_a_parameter_file_round_trips(tmp_path: Path):
    cfg = C.load_config(overrides={'buffer.window': 1.5, 'sensors.imu.enabled': False, 'model.refine': True,
                                   'filter.history': 4.0, 'lost_after_rejections': 7, 'map_frame': 'world',
                                   'device': 'cuda:1', 'refine.uwb_sigma': 0.25})
    f = tmp_path / 'out.yaml'
    f.write_text(yaml.safe_dump({'flm_localizer': {'ros__parameters': C.to_values(cfg)}}))
    back = C.load_config(yaml_file=f)
    assert back == cfg and C.to_values(back) == C.to_values(cfg)
    # the shipped parameter file loads, and its values are the defaults
    assert C.load_config(yaml_file=ROOT / 'config' / 'flm.yaml') == C.load_config()


def test_factories_build_what_the_config_says():
    cfg = C.load_config(overrides={'buffer.window': 1.5, 'sensors.points.enabled': False, 'sensors.odom.max_speed': 2.0,
                                   'filter.gate_prob': 0.99, 'max_hypotheses': 2, 'odom_frame': 'wheel_odom'})
    front = C.make_front_end(cfg, SITE)
    assert front.buffer.config == cfg.buffer
    assert front.expect.anchor_ids == {'a0', 'a1'} and front.expect.max_speed == 2.0
    assert front.expect.odom_frame == 'wheel_odom'
    rig = C.make_rig(cfg, lambda a, b: (np.array([0.1, 0.0, 0.9]), np.array([0.0, 0.0, 0.0, 1.0])))
    assert rig.tag_height is None and rig.uwb_frame == 'uwb_tag'                # -1: the tag's height from TF
    assert rig.rig(()).mounts['uwb_tag'][2] == pytest.approx(0.9)
    fixed = C.make_rig(C.load_config(overrides={'sensors.uwb.tag_height': 1.2}), rig.lookup)
    assert fixed.rig(()).mounts['uwb_tag'][2] == pytest.approx(1.2)
    pipe = C.make_pipeline(cfg, SITE, UwbPoseSource(), rig=rig)
    assert pipe.config == cfg.pipeline and pipe.filter.config.gate_prob == 0.99
    assert pipe.enabled == ['scan', 'depth', 'uwb', 'imu', 'odom'] and pipe.front.buffer.config == cfg.buffer
    assert pipe.front.mount('imu_link') is not None                             # IMU mounts come from the rig
    assert type(C.load_pose_source(C.load_config(overrides={'pose_source': 'uwb'}))) is UwbPoseSource
    # the solve behind the model gets its settings from the same configuration
    src = C.load_pose_source(C.load_config(overrides={'refine.uwb_sigma': 0.3, 'refine.cov_floor_xy': 0.02,
                                                      'model.global_refine': 8}))
    assert src.config.uwb_sigma == 0.3 and src.config.cov_floor_xy == 0.02 and src.config.scan_sigma == 0.05
    assert src.source.global_refine == 8 and C.load_config().model.global_refine == 16
