"""Multi-dimensional data generation (no ROS imports): procedural buildings, UWB infrastructure, robot motion,
sensors and moving people -> training shards and playable rosbag2 bags.

Quick use::

    from flm_core.datagen import ScenarioConfig, generate_scenario, write_shard, write_bag
    cfg = ScenarioConfig(duration=60.0)
    sc = generate_scenario(cfg, seed=7)         # one integer -> one reproducible scenario
    write_shard(sc, 'out/shard-000000.npz')      # training data (see shards.py for the layout)
    write_bag(sc, 'out/office_0000007', 'mcap')  # rosbag2 + site.yaml next to it

Command line: ``flm-gen --help`` (flm_core.datagen.cli:main). Evaluation seeds are reserved (seeds.py).

Realism (``ScenarioConfig.realism``, on for evaluation seeds by default, off for training seeds unless
``realism.apply = 'always'``): the site map comes from a simulated mapping run (mapping.py) of the world as it was
(changes.py: furniture and doors changed since), people are never in the map, glass lets lidar beams through, and
the sensors have real drivers' habits (realism.py: shared UWB frame stamps, anchor biases of both signs, coplanar
anchors, tilted platforms (platform.py), z-down IMUs, tags moving up and down, keyframe-only scan logs).
"""
from .bagwriter import write_bag
from .config import ConfigError, ScenarioConfig
from .scenario import Scenario, generate_scenario
from .seeds import EVAL_SEED_MAX, EVAL_SEED_MIN, SeedError, check_training_seeds, evaluation_seeds
from .shards import iter_windows, load_shard, write_shard

__all__ = ['ConfigError', 'EVAL_SEED_MAX', 'EVAL_SEED_MIN', 'Scenario', 'ScenarioConfig', 'SeedError',
           'check_training_seeds', 'evaluation_seeds', 'generate_scenario', 'iter_windows', 'load_shard',
           'write_bag', 'write_shard']
