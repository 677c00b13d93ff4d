"""Sensor mounting from transforms: base_link -> sensor frame as the (x, y, z, yaw) the model's Rig takes.

``RigBuilder`` keeps the mounts it has found (sensor mounts are static) and asks a lookup function only for frames
it has not seen, so it works with a live TF buffer and with ``/tf_static`` read from a bag alike. The UWB tags (one
or several, each in its own frame) are the exception: a hand-held or flying tag moves against base_link, so their
mounts are looked up again on every call (the newest transform; the last one found is kept when a lookup fails),
and ``tag_height`` can fix their height instead.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from flm_core.geometry import quat_rotate
from flm_core.measurements import CameraIntrinsics
from flm_core.model.tokens import Rig

#: lookup(base_frame, frame) -> (translation (3,), quaternion (4,) xyzw) of frame in base_frame; raises on failure.
Lookup = Callable[[str, str], tuple[np.ndarray, np.ndarray]]


def mount_from_transform(translation: np.ndarray, quaternion: np.ndarray, optical: bool) -> tuple[float, ...]:
    """(x, y, z, yaw) of a sensor in base_link: yaw is the heading of its forward axis (x, or z for optical
    frames, REP-103 camera convention) projected on the base plane."""
    fwd = quat_rotate(np.asarray(quaternion, float), np.array([0.0, 0.0, 1.0] if optical else [1.0, 0.0, 0.0]))
    t = np.asarray(translation, float)
    return float(t[0]), float(t[1]), float(t[2]), float(np.arctan2(fwd[1], fwd[0]))


#: Streams whose items may come from several sensors, each in its own frame.
MULTI_FRAME = ('scan', 'points', 'depth')


def frames_in(window: dict[str, list[tuple[float, Any]]]) -> set[str]:
    """Sensor frame ids appearing in a window: those of every scan, cloud and image (a robot may have several
    lidars), of the newest item of other streams (UWB ranges carry anchor ids, not sensor frames; tag frames are
    the RigBuilder's own)."""
    return {m.frame_id for name, items in window.items() if name != 'uwb'
            for _, m in (items if name in MULTI_FRAME else items[-1:]) if getattr(m, 'frame_id', '')}


class RigBuilder:
    """Sensor mounts from ``lookup`` (see the module docstring). ``uwb_frame``: the primary UWB tag; ``tag_frames``:
    the robot's further tags (each looked up again on every call, like the primary one); ``tag_height``: m, the
    height of every UWB tag above base_link, overriding TF's (None: TF's)."""

    def __init__(self, lookup: Lookup, base_frame: str = 'base_link', uwb_frame: str = 'uwb_tag',
                 tag_height: float | None = None, tag_frames: Iterable[str] = ()) -> None:
        self.lookup = lookup
        self.base_frame = base_frame
        self.uwb_frame = uwb_frame
        self.tag_frames: tuple[str, ...] = tuple(dict.fromkeys((uwb_frame, *tag_frames)))
        self.tag_height = tag_height
        self.mounts: dict[str, tuple[float, ...]] = {}
        self.rotations: dict[str, np.ndarray] = {}   # frame -> (4,) quaternion of the frame in base_link
        self.missing: set[str] = set()   # frames asked for and not (yet) found: taken at base_link meanwhile

    def _find(self, f: str) -> bool:
        try:
            tr, q = self.lookup(self.base_frame, f)
        except Exception:  # noqa: BLE001 (any lookup failure: not known yet)
            if f not in self.mounts:
                self.missing.add(f)
            return False
        mount = mount_from_transform(tr, q, f.endswith('_optical_frame'))
        if f in self.tag_frames and self.tag_height is not None:
            mount = (mount[0], mount[1], float(self.tag_height), mount[3])
        self.mounts[f] = mount
        self.rotations[f] = np.asarray(q, float)
        self.missing.discard(f)
        return True

    def rotation(self, frame: str) -> np.ndarray | None:
        """(4,) quaternion (x, y, z, w) of ``frame`` in base_link, or None while the lookup does not know it."""
        frame = frame.lstrip('/')
        if frame == self.base_frame:
            return np.array([0.0, 0.0, 0.0, 1.0])
        if frame not in self.rotations:
            self._find(frame)
        return self.rotations.get(frame)

    def rig(self, frames: Iterable[str], depth_intrinsics: CameraIntrinsics | None = None) -> Rig:
        for f in set(frames) | set(self.tag_frames):
            if f == self.base_frame or (f in self.mounts and f not in self.tag_frames):
                continue
            self._find(f)
        for tag in self.tag_frames:
            if tag not in self.mounts and self.tag_height is not None:
                self.mounts[tag] = (0.0, 0.0, float(self.tag_height), 0.0)
        return Rig(mounts=dict(self.mounts), uwb_frame=self.uwb_frame, depth_intrinsics=depth_intrinsics,
                   tag_frames=self.tag_frames)
