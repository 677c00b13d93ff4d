"""The transform tree (flm_core.tftree): chains, interpolation, extrapolation limits and tf2-style errors."""
import numpy as np
import pytest

from flm_core.geometry import quat_rotate, quat_to_yaw, yaw_to_quat
from flm_core.tftree import ConnectivityError, ExtrapolationError, LookupError_, TransformTree


def _tree():
    t = TransformTree(cache_time=10.0)
    t.set_transform('base_link', 'laser', 0.0, [0.2, 0.0, 0.3], yaw_to_quat(np.pi), static=True)
    for k in range(11):  # odom -> base_link: moving along x at 1 m/s, turning at 0.1 rad/s
        s = float(k)
        t.set_transform('odom', 'base_link', s, [s, 0.0, 0.0], yaw_to_quat(0.1 * s))
    t.set_transform('map', 'odom', 0.0, [1.0, 2.0, 0.0], yaw_to_quat(np.pi / 2), static=True)
    return t


def test_chain_through_static_and_dynamic_links_matches_hand_composition():
    t = _tree()
    tr, q = t.lookup('map', 'laser', 4.5)
    # by hand: map<-odom (static) * odom<-base (interpolated at 4.5) * base<-laser
    base_t, base_yaw = np.array([4.5, 0, 0]), 0.45
    p_base = base_t + quat_rotate(yaw_to_quat(base_yaw), [0.2, 0, 0.3])
    p_map = np.array([1.0, 2.0, 0.0]) + quat_rotate(yaw_to_quat(np.pi / 2), p_base)
    np.testing.assert_allclose(tr, p_map, atol=1e-9)
    assert quat_to_yaw(q) == pytest.approx(np.pi / 2 + 0.45 + np.pi - 2 * np.pi, abs=1e-9)


def test_inverse_lookup_is_the_inverse():
    t = _tree()
    a = t.lookup('laser', 'map', 3.3)
    b = t.lookup('map', 'laser', 3.3)
    p = np.array([0.3, -1.0, 2.0])
    back = a[0] + quat_rotate(a[1], b[0] + quat_rotate(b[1], p))
    np.testing.assert_allclose(back, p, atol=1e-9)


def test_time_zero_is_latest_common_time_and_extrapolation_is_refused():
    t = _tree()
    tr, _ = t.lookup('odom', 'laser', 0.0)
    assert tr[0] == pytest.approx(10.0 + 0.2 * np.cos(1.0), abs=1e-9)
    with pytest.raises(ExtrapolationError, match='extrapolation'):
        t.lookup('odom', 'base_link', 10.5)
    assert not t.can_transform('odom', 'base_link', 10.5)


def test_cache_time_forgets_old_dynamic_transforms_but_not_static_ones():
    t = _tree()
    t.set_transform('odom', 'base_link', 25.0, [25.0, 0, 0], yaw_to_quat(0.0))
    with pytest.raises(ExtrapolationError):
        t.lookup('odom', 'base_link', 5.0)   # older than 25 - 10
    assert t.can_transform('base_link', 'laser', 123.0)  # static: any time


def test_unknown_and_disconnected_frames():
    t = _tree()
    t.set_transform('world', 'elsewhere', 0.0, [0, 0, 0], [0, 0, 0, 1], static=True)
    with pytest.raises(LookupError_, match='nope'):
        t.lookup('map', 'nope')
    with pytest.raises(ConnectivityError):
        t.lookup('map', 'elsewhere')


def test_invalid_transforms_are_refused():
    t = TransformTree()
    with pytest.raises(ValueError):
        t.set_transform('a', 'b', 0.0, [np.nan, 0, 0], [0, 0, 0, 1])
    with pytest.raises(ValueError):
        t.set_transform('a', 'b', 0.0, [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError):
        t.set_transform('a', 'a', 0.0, [0, 0, 0], [0, 0, 0, 1])
