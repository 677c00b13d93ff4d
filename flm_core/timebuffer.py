"""Multi-sensor time buffer: the last W seconds of every stream, in bounded memory.

Stamps are float seconds of the message headers (sim time when ``use_sim_time`` is on: the caller passes stamps
and its clock's ``now``; the buffer has no clock of its own). What the buffer does with each message:

* accepts it in stamp order, even when it arrives out of order, as long as it is at most ``max_lateness`` older
  than the newest stamp seen (``TOO_LATE`` otherwise);
* drops exact duplicates (same stream, same stamp and same ``key``: ``DUPLICATE``); several items may share a stamp
  when their keys differ (a UWB driver stamps all ranges of one ranging frame with one time: one item per anchor
  and tag; two lidars may share a stamp: one item per frame);
* rejects stamps from the far future, more than ``max_future`` ahead of the caller's clock (``FUTURE``),
  when the caller gives one;
* detects time jumping backwards (a bag loop, a ``/clock`` reset) and starts over (``RESET``): by the clock going
  back more than ``jump_back`` when the caller gives ``now`` (a message of the old timeline that arrives just after
  the jump clears the buffer too but is refused as ``FUTURE``: watch :attr:`TimeBuffer.resets`); without a clock,
  when consecutive messages of ``jump_confirm`` distinct stamps all land more than ``jump_back`` before the newest
  stamp (a single stale message, or one stale frame of ranges, is only too late);
* forgets what is older than ``window + max_lateness`` behind the newest stamp, and never holds more than
  ``max_per_stream`` items per stream (the oldest go first, counted as ``evicted``).

:meth:`TimeBuffer.window` yields everything in [t - W, t]; :meth:`TimeBuffer.interpolate` gives a vector stream
(IMU rates, odometry velocities) at any stamp, and :meth:`TimeBuffer.interpolate_pose` an odometry pose with
slerped orientation.
"""
from __future__ import annotations

import bisect
import math
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Generic, Hashable, TypeVar

import numpy as np

from flm_core.geometry import quat_slerp

T = TypeVar('T')


class Verdict(str, Enum):
    ACCEPTED = 'accepted'
    DUPLICATE = 'duplicate'
    TOO_LATE = 'too_late'
    FUTURE = 'future'
    NONFINITE_STAMP = 'nonfinite_stamp'
    RESET = 'reset'  # time jumped back: the buffer was cleared and this message starts the new timeline


@dataclass(frozen=True)
class TimeBufferConfig:
    """window: s kept for the model; max_lateness: s a message may arrive behind the newest stamp;
    max_per_stream: hard bound on items per stream; jump_back: s backwards that count as a time jump;
    jump_confirm: consecutive old messages (of distinct stamps) that confirm a jump when no clock is given;
    max_future: s a stamp may be ahead of the caller's clock."""

    window: float = 2.0
    max_lateness: float = 0.5
    max_per_stream: int = 4096
    jump_back: float = 1.0
    jump_confirm: int = 3
    max_future: float = 1.0

    def __post_init__(self) -> None:
        for name in ('window', 'max_lateness', 'jump_back', 'max_future'):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f'TimeBufferConfig.{name} must be a finite number >= 0, got {v!r}')
        if self.window <= 0:
            raise ValueError(f'TimeBufferConfig.window must be > 0, got {self.window!r}')
        if self.max_per_stream < 2:
            raise ValueError(f'TimeBufferConfig.max_per_stream must be >= 2, got {self.max_per_stream!r}')
        if self.jump_confirm < 1:
            raise ValueError(f'TimeBufferConfig.jump_confirm must be >= 1, got {self.jump_confirm!r}')


class _Stream(Generic[T]):
    __slots__ = ('stamps', 'items', 'keys', 'counts', 'last_arrival')

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.items: list[T] = []
        self.keys: list[Hashable] = []
        self.counts: Counter[str] = Counter()
        self.last_arrival: float | None = None


class TimeBuffer:
    """Bounded, stamp-ordered buffer of several named streams (see the module docstring)."""

    def __init__(self, config: TimeBufferConfig | None = None) -> None:
        self.config = config or TimeBufferConfig()
        self._streams: dict[str, _Stream[Any]] = {}
        self._latest: float | None = None      # newest accepted stamp over all streams
        self._last_now: float | None = None    # the caller's clock at the last add()
        self._jump_candidates: list[tuple[str, float, Any, Hashable]] = []
        self.resets = 0

    # ------------------------------------------------------------------ writing
    def add(self, stream: str, stamp: float, item: Any, now: float | None = None, key: Hashable = None) -> Verdict:
        """Offer one measurement; returns what happened to it (also counted per stream and verdict). ``key``: what
        tells items with the same stamp apart (e.g. the anchor id of a UWB range); None = one item per stamp."""
        cfg = self.config
        s = self._streams.setdefault(stream, _Stream())
        if not math.isfinite(stamp):
            return self._count(s, Verdict.NONFINITE_STAMP)
        if now is not None:
            if self._last_now is not None and now < self._last_now - cfg.jump_back:
                self._reset()
                s = self._streams.setdefault(stream, _Stream())
                self._last_now = now
                if stamp > now + cfg.max_future:
                    # sent before the jump and received after it: it belongs to the old timeline and must not
                    # start the new one (every later message would be too late behind it)
                    return self._count(s, Verdict.FUTURE)
                self._insert(s, stamp, item, key=key)
                return self._count(s, Verdict.RESET)
            self._last_now = now if self._last_now is None else max(self._last_now, now)
            if stamp > now + cfg.max_future:
                return self._count(s, Verdict.FUTURE)
        latest = self._latest
        if latest is not None and stamp < latest - cfg.jump_back and now is None:
            self._jump_candidates.append((stream, stamp, item, key))
            if len({c[1] for c in self._jump_candidates}) >= cfg.jump_confirm:  # distinct stamps: not one frame
                candidates = self._jump_candidates
                self._reset()
                for name, st, it, k in candidates:
                    self._insert(self._streams.setdefault(name, _Stream()), st, it, key=k)
                s = self._streams[stream]
                return self._count(s, Verdict.RESET)
            return self._count(s, Verdict.TOO_LATE)
        if latest is not None and stamp < latest - cfg.max_lateness:
            return self._count(s, Verdict.TOO_LATE)
        self._jump_candidates.clear()
        i = bisect.bisect_left(s.stamps, stamp)
        j = i
        while j < len(s.stamps) and s.stamps[j] == stamp:
            if key is None or s.keys[j] == key:
                return self._count(s, Verdict.DUPLICATE)
            j += 1
        self._insert(s, stamp, item, j, key)
        if now is not None:
            s.last_arrival = now
        return self._count(s, Verdict.ACCEPTED)

    def _insert(self, s: _Stream[Any], stamp: float, item: Any, i: int | None = None, key: Hashable = None) -> None:
        if i is None:
            i = bisect.bisect_right(s.stamps, stamp)
        s.stamps.insert(i, stamp)
        s.items.insert(i, item)
        s.keys.insert(i, key)
        if self._latest is None or stamp > self._latest:
            self._latest = stamp
            self._prune()
        if len(s.stamps) > self.config.max_per_stream:
            del s.stamps[0], s.items[0], s.keys[0]
            s.counts['evicted'] += 1

    def _prune(self) -> None:
        assert self._latest is not None
        horizon = self._latest - self.config.window - self.config.max_lateness
        for s in self._streams.values():
            k = bisect.bisect_left(s.stamps, horizon)
            if k:
                del s.stamps[:k], s.items[:k], s.keys[:k]

    def _reset(self) -> None:
        for s in self._streams.values():
            s.stamps.clear()
            s.items.clear()
            s.keys.clear()
        self._latest = None
        self._last_now = None
        self._jump_candidates = []
        self.resets += 1

    @staticmethod
    def _count(s: _Stream[Any], v: Verdict) -> Verdict:
        s.counts[v.value] += 1
        return v

    def clear(self) -> None:
        """Forget all measurements (counters are kept)."""
        self._reset()
        self.resets -= 1

    # ------------------------------------------------------------------ reading
    @property
    def latest(self) -> float | None:
        """Newest accepted stamp over all streams (None when empty)."""
        return self._latest

    def streams(self) -> list[str]:
        return list(self._streams)

    def __len__(self) -> int:
        return sum(len(s.stamps) for s in self._streams.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """Per stream: how many messages got each verdict, plus 'evicted'."""
        return {name: dict(s.counts) for name, s in self._streams.items()}

    def last_stamp(self, stream: str) -> float | None:
        s = self._streams.get(stream)
        return s.stamps[-1] if s and s.stamps else None

    def before(self, stream: str, stamp: float) -> tuple[float, Any] | None:
        """(stamp, item) of the newest buffered item of ``stream`` stamped strictly before ``stamp``, or None."""
        s = self._streams.get(stream)
        if s is None:
            return None
        i = bisect.bisect_left(s.stamps, stamp)
        return (s.stamps[i - 1], s.items[i - 1]) if i else None

    def newest(self) -> dict[str, list[tuple[float, Any]]]:
        """The newest measurement of every ``key`` of every non-empty stream (each lidar's newest scan, each tag's
        newest range to each anchor; one item for a stream without keys), as a window (stream -> [(stamp, m)],
        oldest first: the last is the stream's newest)."""
        out: dict[str, list[tuple[float, Any]]] = {}
        for name, s in self._streams.items():
            if not s.stamps:
                continue
            if s.keys[-1] is None:                      # a stream without keys (IMU, odometry)
                out[name] = [(s.stamps[-1], s.items[-1])]
                continue
            seen: set[Hashable] = set()
            picked = []
            for i in range(len(s.stamps) - 1, -1, -1):
                if s.keys[i] not in seen:
                    seen.add(s.keys[i])
                    picked.append((s.stamps[i], s.items[i]))
            out[name] = picked[::-1]
        return out

    def window(self, t: float, width: float | None = None,
               streams: list[str] | None = None) -> dict[str, list[tuple[float, Any]]]:
        """All measurements with stamps in [t - width, t] (width defaults to the configured window), per stream,
        oldest first. Streams with nothing in range map to an empty list."""
        width = self.config.window if width is None else width
        out: dict[str, list[tuple[float, Any]]] = {}
        for name in (streams if streams is not None else self._streams):
            s = self._streams.get(name)
            if s is None:
                out[name] = []
                continue
            lo = bisect.bisect_left(s.stamps, t - width)
            hi = bisect.bisect_right(s.stamps, t)
            out[name] = list(zip(s.stamps[lo:hi], s.items[lo:hi]))
        return out

    def _bracket(self, stream: str, t: float, max_extrapolation: float) -> tuple[int, int, float]:
        s = self._streams.get(stream)
        if s is None or not s.stamps:
            raise LookupError(f'no data on stream {stream!r}')
        st = s.stamps
        if t < st[0] - max_extrapolation or t > st[-1] + max_extrapolation:
            raise LookupError(
                f'stream {stream!r}: stamp {t:.6f} is outside the buffered range [{st[0]:.6f}, {st[-1]:.6f}] '
                f'by more than the extrapolation limit {max_extrapolation} s')
        if len(st) == 1:
            return 0, 0, 0.0
        i = bisect.bisect_right(st, t)
        i0 = min(max(i - 1, 0), len(st) - 2)
        i1 = i0 + 1
        frac = (t - st[i0]) / (st[i1] - st[i0])
        return i0, i1, frac

    def interpolate(self, stream: str, t: float, get: Callable[[Any], np.ndarray],
                    max_extrapolation: float = 0.05) -> np.ndarray:
        """Linear interpolation of ``get(item)`` (any array shape) at stamp t; up to ``max_extrapolation`` s
        beyond the buffered range it extrapolates linearly; further raises LookupError."""
        i0, i1, f = self._bracket(stream, t, max_extrapolation)
        items = self._streams[stream].items
        a = np.asarray(get(items[i0]), dtype=np.float64)
        if i0 == i1:
            return a
        b = np.asarray(get(items[i1]), dtype=np.float64)
        return a + f * (b - a)

    def interpolate_pose(self, stream: str, t: float, get: Callable[[Any], tuple[np.ndarray, np.ndarray]],
                         max_extrapolation: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        """Pose at stamp t: ``get(item)`` returns (position (3,), quaternion (4,) xyzw); position is linear,
        orientation slerped (clamped to the bracketing pair outside it)."""
        i0, i1, f = self._bracket(stream, t, max_extrapolation)
        items = self._streams[stream].items
        p0, q0 = (np.asarray(v, dtype=np.float64) for v in get(items[i0]))
        if i0 == i1:
            return p0, q0
        p1, q1 = (np.asarray(v, dtype=np.float64) for v in get(items[i1]))
        return p0 + f * (p1 - p0), quat_slerp(q0, q1, min(max(f, 0.0), 1.0))
