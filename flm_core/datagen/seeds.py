"""Seeds: one integer reproduces a whole scenario; a reserved range is kept for evaluation.

Every scenario is drawn from one integer ``seed``. Each dimension (building, anchors, motion, each sensor, the
dynamic objects) gets its own :class:`numpy.random.Generator` from ``SeedSequence(seed, spawn_key=(k,))`` with a fixed
key ``k`` per dimension, so changing a sensor's settings never changes the building or the trajectory of the same
seed, and dimensions vary independently.

Reserved evaluation seeds
-------------------------
Seeds in ``[EVAL_SEED_MIN, EVAL_SEED_MAX]`` = ``[1_000_000, 1_999_999]`` are evaluation-only. Training data
generation (:func:`check_training_seeds`, the ``flm-gen`` default mode) refuses them, so an evaluation scenario can
never leak into a training set. Use :func:`evaluation_seeds` (or ``flm-gen --evaluation``) to generate them.
"""
from __future__ import annotations

import numpy as np

EVAL_SEED_MIN = 1_000_000
EVAL_SEED_MAX = 1_999_999
SEED_MAX = 2**63 - 1

#: Fixed spawn keys per dimension. Never renumber: it would change every generated scenario.
DIMENSIONS: dict[str, int] = {
    'building': 0,
    'anchors': 1,
    'motion': 2,
    'dynamics': 3,
    'lidar2d': 10,
    'lidar3d': 11,
    'depth': 12,
    'uwb': 13,
    'imu': 14,
    'odom': 15,
    'clock': 20,
    'changes': 21,      # realism (config.RealismConfig): world changed after mapping
    'mapping': 22,      # the simulated mapping run
    'habits': 23,       # sensor habits drawn per scenario (anchor height and biases, IMU mount, tilt, tag height)
    'keyframes': 24,    # keyframe times of a sparse scan log
}


class SeedError(ValueError):
    """A seed or seed range is invalid or overlaps the reserved evaluation range."""


def is_evaluation_seed(seed: int) -> bool:
    return EVAL_SEED_MIN <= int(seed) <= EVAL_SEED_MAX


def check_seed(seed: int, name: str = 'seed') -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SeedError(f'{name}: must be an integer, got {seed!r}')
    if not 0 <= int(seed) <= SEED_MAX:
        raise SeedError(f'{name}: must be in [0, {SEED_MAX}], got {seed}')
    return int(seed)


def check_training_seeds(start: int, count: int = 1, name: str = 'seed') -> range:
    """The seeds ``start .. start+count-1`` for training data; raises :class:`SeedError` naming ``name`` when any of
    them falls in the reserved evaluation range."""
    start = check_seed(start, name)
    if count < 1:
        raise SeedError(f'count: must be >= 1, got {count}')
    last = start + count - 1
    check_seed(last, name)
    if start <= EVAL_SEED_MAX and last >= EVAL_SEED_MIN:
        raise SeedError(f'{name}: the range [{start}, {last}] overlaps the reserved evaluation seeds '
                        f'[{EVAL_SEED_MIN}, {EVAL_SEED_MAX}]; training never draws from them (use --evaluation to '
                        f'generate evaluation data)')
    return range(start, last + 1)


def evaluation_seeds(count: int, offset: int = 0) -> range:
    """The reserved evaluation seeds ``EVAL_SEED_MIN + offset ..`` (``count`` of them)."""
    if count < 1 or offset < 0 or EVAL_SEED_MIN + offset + count - 1 > EVAL_SEED_MAX:
        raise SeedError(f'count/offset: evaluation seeds are [{EVAL_SEED_MIN}, {EVAL_SEED_MAX}], '
                        f'got offset {offset} and count {count}')
    return range(EVAL_SEED_MIN + offset, EVAL_SEED_MIN + offset + count)


def rng_for(seed: int, dimension: str) -> np.random.Generator:
    """The generator of one dimension of scenario ``seed``."""
    key = DIMENSIONS[dimension]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=(key,))))
