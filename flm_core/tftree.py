"""A transform tree with tf2's semantics, without ROS.

Frames form a tree (each child has one parent). Static transforms hold for all time; dynamic ones are kept for
``cache_time`` seconds and interpolated (linear translation, slerped rotation) between stamps. A lookup at
time 0 means "the latest time at which the whole chain is available", as in tf2. Errors mirror tf2:
:class:`LookupError_` (unknown frame), :class:`ConnectivityError` (frames in different trees),
:class:`ExtrapolationError` (stamp outside the cached range of a link).

Transforms are (translation (3,), quaternion (4,) xyzw) and map points from the child frame to the parent
frame: p_parent = R p_child + t.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from flm_core.geometry import quat_multiply, quat_normalized, quat_rotate, quat_slerp


class TransformError(Exception):
    """Base of the tree's lookup errors (tf2's TransformException)."""


class LookupError_(TransformError):  # noqa: N801 (tf2 name, not the builtin LookupError)
    """A frame does not exist in the tree."""


class ConnectivityError(TransformError):
    """The two frames are not connected."""


class ExtrapolationError(TransformError):
    """The stamp is outside what the tree holds for a link of the chain."""


Transform = tuple[np.ndarray, np.ndarray]  # (translation (3,), quaternion (4,) xyzw)


def compose(a: Transform, b: Transform) -> Transform:
    """a * b: first b, then a (b maps c->b, a maps b->a: result maps c->a)."""
    return a[0] + quat_rotate(a[1], b[0]), quat_multiply(a[1], b[1])


def invert(a: Transform) -> Transform:
    qi = a[1] * np.array([-1.0, -1.0, -1.0, 1.0])
    return -quat_rotate(qi, a[0]), qi


IDENTITY: Transform = (np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))


@dataclass
class _Link:
    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    values: list[Transform] = field(default_factory=list)


class TransformTree:
    """Holds static and time-stamped transforms and answers lookups between any two frames."""

    def __init__(self, cache_time: float = 10.0) -> None:
        if not cache_time > 0:
            raise ValueError(f'cache_time must be > 0, got {cache_time!r}')
        self.cache_time = cache_time
        self._links: dict[str, _Link] = {}

    def clear(self) -> None:
        """Drop dynamic transforms (static ones stay, as tf2 does on a time jump)."""
        self._links = {c: lk for c, lk in self._links.items() if lk.static}

    def frames(self) -> set[str]:
        return set(self._links) | {lk.parent for lk in self._links.values()}

    def set_transform(self, parent: str, child: str, stamp: float, translation: np.ndarray,
                      rotation: np.ndarray, static: bool = False) -> None:
        """Insert parent->child at stamp. Raises ValueError for empty/equal frame names, non-finite values,
        a zero quaternion, or a child that would get a second parent (re-parenting replaces the link)."""
        if not parent or not child:
            raise ValueError('frame names must be non-empty')
        parent, child = parent.lstrip('/'), child.lstrip('/')
        if parent == child:
            raise ValueError(f'transform from {parent!r} to itself')
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(t)) or not np.isfinite(stamp):
            raise ValueError(f'non-finite transform {parent}->{child}')
        q = quat_normalized(np.asarray(rotation, dtype=np.float64).reshape(4))
        lk = self._links.get(child)
        if lk is None or lk.parent != parent or lk.static != static:
            lk = self._links[child] = _Link(parent=parent, static=static)
        if static:
            lk.stamps, lk.values = [stamp], [(t, q)]
            return
        i = bisect.bisect_left(lk.stamps, stamp)
        if i < len(lk.stamps) and lk.stamps[i] == stamp:
            lk.values[i] = (t, q)
        else:
            lk.stamps.insert(i, stamp)
            lk.values.insert(i, (t, q))
        horizon = lk.stamps[-1] - self.cache_time
        k = bisect.bisect_left(lk.stamps, horizon)
        if k:
            del lk.stamps[:k], lk.values[:k]

    def _chain(self, frame: str) -> list[str]:
        """frame, parent, grandparent, ... up to the root."""
        out = [frame]
        seen = {frame}
        while frame in self._links:
            frame = self._links[frame].parent
            if frame in seen:
                raise ConnectivityError(f'loop in the transform tree at {frame!r}')
            seen.add(frame)
            out.append(frame)
        return out

    def _link_at(self, child: str, stamp: float) -> Transform:
        lk = self._links[child]
        if lk.static:
            return lk.values[0]
        st = lk.stamps
        if stamp < st[0] or stamp > st[-1]:
            raise ExtrapolationError(
                f'lookup of {lk.parent}->{child} at {stamp:.6f} would require extrapolation: '
                f'data from {st[0]:.6f} to {st[-1]:.6f}')
        i = bisect.bisect_left(st, stamp)
        if st[i] == stamp:
            return lk.values[i]
        t0, t1 = st[i - 1], st[i]
        f = (stamp - t0) / (t1 - t0)
        (a, qa), (b, qb) = lk.values[i - 1], lk.values[i]
        return a + f * (b - a), quat_slerp(qa, qb, f)

    def _path(self, target: str, source: str) -> tuple[list[str], list[str]]:
        for f in (target, source):
            if f not in self._links and f not in {lk.parent for lk in self._links.values()}:
                raise LookupError_(f'frame {f!r} does not exist')
        up_s = self._chain(source)
        up_t = self._chain(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            raise ConnectivityError(f'{target!r} and {source!r} are not part of the same tree')
        return up_s[:up_s.index(common)], up_t[:up_t.index(common)]

    def latest_common_time(self, target: str, source: str) -> float:
        """Newest stamp at which every dynamic link between the two frames is available (0.0 if all static)."""
        s_links, t_links = self._path(target, source)
        newest = [self._links[c].stamps[-1] for c in s_links + t_links if not self._links[c].static]
        return min(newest) if newest else 0.0

    def lookup(self, target: str, source: str, stamp: float = 0.0) -> Transform:
        """Transform that maps points in ``source`` to ``target`` at ``stamp`` (0 = latest common time)."""
        target, source = target.lstrip('/'), source.lstrip('/')
        if target == source:
            if target not in self.frames():
                raise LookupError_(f'frame {target!r} does not exist')
            return IDENTITY
        s_links, t_links = self._path(target, source)
        if stamp == 0.0:
            stamp = self.latest_common_time(target, source)
        src_to_common = IDENTITY
        for child in s_links:  # source -> ... -> common
            src_to_common = compose(self._link_at(child, stamp), src_to_common)
        tgt_to_common = IDENTITY
        for child in t_links:
            tgt_to_common = compose(self._link_at(child, stamp), tgt_to_common)
        return compose(invert(tgt_to_common), src_to_common)

    def can_transform(self, target: str, source: str, stamp: float = 0.0) -> bool:
        try:
            self.lookup(target, source, stamp)
        except TransformError:
            return False
        return True
