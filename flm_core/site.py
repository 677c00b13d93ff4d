"""Site files: the description of a building that the localizer takes as input.

A site file is YAML::

    name: office_0042            # optional, defaults to the file's stem
    frame_id: map                # optional, the frame everything below is expressed in
    map: map.yaml                # optional, a map_server map (map.yaml + image), relative to the site file
    anchors:                     # optional, UWB anchors
      - id: a0
        position: [1.0, 2.0, 2.5]    # metres, in frame_id
        bias: 0.0                     # optional, metres, known range bias to subtract
    point_map: points.npy        # optional, (N, 3) float32 points in frame_id (.npy, or .pcd/.ply via open3d)

The map follows map_server's format (``image``, ``resolution``, ``origin``, ``negate``, ``occupied_thresh``,
``free_thresh``, ``mode``). The grid is held like ``nav_msgs/OccupancyGrid``: row 0 is the lowest y, values are
-1 (unknown) or 0..100 (occupancy probability in percent).

Every problem raises :class:`SiteError` naming the file, the key and what is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class SiteError(ValueError):
    """A site or map file is missing, malformed or inconsistent."""


def _free(occupancy: np.ndarray, threshold: int) -> np.ndarray:
    """Where occupancy percentages (-1 unknown) count as free floor: 0 <= occupancy <= threshold."""
    return (occupancy >= 0) & (occupancy <= threshold)


@dataclass(frozen=True)
class OccupancyMap:
    """A 2D occupancy grid.

    grid: (H, W) int8, row 0 = lowest y, -1 unknown, 0..100 occupancy percent.
    resolution: metres per cell.
    origin: (3,) float64 pose (x, y, yaw) of the lower-left corner of cell (0, 0) in the map frame.
    """

    grid: np.ndarray
    resolution: float
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape  # type: ignore[return-value]

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) in metres."""
        return self.grid.shape[1] * self.resolution, self.grid.shape[0] * self.resolution

    def occupied(self, threshold: int = 65) -> np.ndarray:
        """(H, W) bool, True where occupancy >= threshold percent."""
        return self.grid >= threshold

    def free(self, threshold: int = 25) -> np.ndarray:
        """(H, W) bool, True where 0 <= occupancy <= threshold percent."""
        return _free(self.grid, threshold)

    def at(self, xy: np.ndarray) -> np.ndarray:
        """(...) int, the occupancy of the cells holding map-frame points xy (..., 2) m; -1 (unknown) off the grid."""
        cr = self.world_to_cell(xy)
        H, W = self.grid.shape
        inside = (cr[..., 0] >= 0) & (cr[..., 0] < W) & (cr[..., 1] >= 0) & (cr[..., 1] < H)
        value = self.grid[np.clip(cr[..., 1], 0, H - 1), np.clip(cr[..., 0], 0, W - 1)]
        return np.where(inside, value, -1)

    def free_at(self, xy: np.ndarray, threshold: int = 25) -> np.ndarray:
        """(...) bool, :meth:`free` at map-frame points xy (..., 2) m (off the grid: not free)."""
        return _free(self.at(xy), threshold)

    def world_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) map-frame metres -> (..., 2) int (col, row) cell indices (may be out of bounds)."""
        xy = np.asarray(xy, dtype=np.float64)
        c, s = math.cos(self.origin[2]), math.sin(self.origin[2])
        dx = xy[..., 0] - self.origin[0]
        dy = xy[..., 1] - self.origin[1]
        u = c * dx + s * dy
        v = -s * dx + c * dy
        return np.stack([np.floor(u / self.resolution), np.floor(v / self.resolution)], axis=-1).astype(np.int64)

    def cell_to_world(self, cr: np.ndarray) -> np.ndarray:
        """(..., 2) (col, row) cell indices -> (..., 2) map-frame metres of the cell centres."""
        cr = np.asarray(cr, dtype=np.float64)
        u = (cr[..., 0] + 0.5) * self.resolution
        v = (cr[..., 1] + 0.5) * self.resolution
        c, s = math.cos(self.origin[2]), math.sin(self.origin[2])
        return np.stack([self.origin[0] + c * u - s * v, self.origin[1] + s * u + c * v], axis=-1)

    def occupied_points(self, threshold: int = 65) -> np.ndarray:
        """(N, 2) map-frame centres of occupied cells."""
        rows, cols = np.nonzero(self.occupied(threshold))
        return self.cell_to_world(np.stack([cols, rows], axis=-1))


@dataclass(frozen=True)
class Anchor:
    """A UWB anchor: id (the `frame_id` of its `sensor_msgs/Range` messages), position (3,) metres, bias metres."""

    id: str
    position: np.ndarray
    bias: float = 0.0


@dataclass(frozen=True)
class Site:
    """A building as the localizer sees it."""

    name: str
    frame_id: str = 'map'
    map: OccupancyMap | None = None
    anchors: tuple[Anchor, ...] = ()
    point_map: np.ndarray | None = None  # (N, 3) float32
    path: Path | None = None

    def anchor_table(self) -> dict[str, Anchor]:
        return {a.id: a for a in self.anchors}

    def anchor_positions(self) -> np.ndarray:
        """(A, 3) anchor positions in the order of ``anchors``."""
        if not self.anchors:
            return np.zeros((0, 3))
        return np.stack([a.position for a in self.anchors])

    def extent(self) -> float:
        """m, the diagonal of the area the site describes (the map, else the anchors' and point map's bounding
        box in the plane); 0 when it describes none."""
        if self.map is not None:
            return float(np.hypot(*self.map.size_m))
        pts = [p[:, :2] for p in (self.anchor_positions(), self.point_map) if p is not None and len(p)]
        if not pts:
            return 0.0
        xy = np.concatenate(pts).astype(np.float64)
        return float(np.hypot(*(xy.max(0) - xy.min(0))))


# --------------------------------------------------------------------------------------------------- map files
_MAP_MODES = ('trinary', 'scale', 'raw')


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise SiteError(f'{where}: missing key {key!r}')
    return d[key]


def _number(value: Any, key: str, where: str, *, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SiteError(f'{where}: key {key!r} must be a number, got {value!r}') from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise SiteError(f'{where}: key {key!r} must be a {"positive " if positive else ""}finite number, got {value!r}')
    return x


def _vector(value: Any, n: int, key: str, where: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise SiteError(f'{where}: key {key!r} must be a list of {n} numbers, got {value!r}')
    return np.array([_number(v, key, where) for v in value], dtype=np.float64)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise SiteError(f'{path}: file not found')
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SiteError(f'{path}: not valid YAML: {e}') from None
    if not isinstance(data, dict):
        raise SiteError(f'{path}: expected a mapping at the top level, got {type(data).__name__}')
    return data


def _read_image(path: Path) -> np.ndarray:
    """Read a map image as (H, W) float in [0, 1] (image row 0 = top), alpha ignored."""
    from PIL import Image  # noqa: PLC0415 (pillow is a matplotlib dependency; import only when reading)

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert('LA') if im.mode not in ('L', 'I', 'I;16') else im)
    except (OSError, ValueError) as e:
        raise SiteError(f'{path}: cannot read map image: {e}') from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    maxval = 65535.0 if arr.dtype == np.uint16 or arr.max(initial=0) > 255 else 255.0
    return arr.astype(np.float64) / maxval


def load_map_yaml(path: str | Path) -> OccupancyMap:
    """Load a map_server ``map.yaml`` and its image into an :class:`OccupancyMap`."""
    path = Path(path)
    d = _read_yaml(path)
    where = str(path)
    image = _need(d, 'image', where)
    if not isinstance(image, str) or not image:
        raise SiteError(f'{where}: key \'image\' must be a file name, got {image!r}')
    resolution = _number(_need(d, 'resolution', where), 'resolution', where, positive=True)
    origin = _vector(_need(d, 'origin', where), 3, 'origin', where)
    negate = int(d.get('negate', 0))
    occ_th = _number(d.get('occupied_thresh', 0.65), 'occupied_thresh', where)
    free_th = _number(d.get('free_thresh', 0.25), 'free_thresh', where)
    if not 0.0 <= free_th < occ_th <= 1.0:
        raise SiteError(f'{where}: need 0 <= free_thresh < occupied_thresh <= 1, got {free_th} and {occ_th}')
    mode = d.get('mode', 'trinary')
    if mode not in _MAP_MODES:
        raise SiteError(f'{where}: key \'mode\' must be one of {_MAP_MODES}, got {mode!r}')
    img_path = (path.parent / image) if not Path(image).is_absolute() else Path(image)
    pix = _read_image(img_path)
    occ = pix if negate else 1.0 - pix  # map_server: dark = occupied unless negate
    grid = np.full(occ.shape, -1, dtype=np.int8)
    if mode == 'trinary':
        grid[occ > occ_th] = 100
        grid[occ < free_th] = 0
    elif mode == 'scale':
        grid[occ > occ_th] = 100
        grid[occ < free_th] = 0
        mid = (occ >= free_th) & (occ <= occ_th)
        grid[mid] = np.rint(99 * (occ[mid] - free_th) / (occ_th - free_th)).astype(np.int8)
    else:  # raw
        grid = np.clip(np.rint(pix * 255.0), -1, 100).astype(np.int8)
    return OccupancyMap(grid=np.ascontiguousarray(grid[::-1]), resolution=resolution, origin=origin)


def save_map_yaml(m: OccupancyMap, path: str | Path) -> Path:
    """Write ``m`` as a map_server map: ``path`` (yaml) and a PGM next to it with the same stem."""
    from PIL import Image  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full(m.grid.shape, 205, dtype=np.uint8)  # unknown
    img[m.grid == 0] = 254
    img[m.grid >= 65] = 0
    mid = (m.grid > 0) & (m.grid < 65)
    img[mid] = np.rint(254 * (1.0 - m.grid[mid] / 100.0)).astype(np.uint8)
    pgm = path.with_suffix('.pgm')
    Image.fromarray(img[::-1]).save(pgm)
    meta = {
        'image': pgm.name,
        'mode': 'trinary',
        'resolution': float(m.resolution),
        'origin': [float(v) for v in m.origin],
        'negate': 0,
        'occupied_thresh': 0.65,
        'free_thresh': 0.196,  # as map_saver: the unknown grey (205) stays unknown
    }
    path.write_text(yaml.safe_dump(meta, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------------------- site files
def _load_point_map(path: Path, where: str) -> np.ndarray:
    if not path.is_file():
        raise SiteError(f'{where}: key \'point_map\': file not found: {path}')
    if path.suffix == '.npy':
        pts = np.load(path, allow_pickle=False)
    elif path.suffix in ('.pcd', '.ply'):
        import open3d as o3d  # noqa: PLC0415

        pts = np.asarray(o3d.io.read_point_cloud(str(path)).points)
    else:
        raise SiteError(f'{where}: key \'point_map\': unsupported format {path.suffix!r} (use .npy, .pcd or .ply)')
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise SiteError(f'{where}: key \'point_map\': expected finite (N, 3) points, got shape {pts.shape}')
    return pts.astype(np.float32)


def load_site(path: str | Path) -> Site:
    """Load and validate a site file (see the module docstring)."""
    path = Path(path)
    d = _read_yaml(path)
    where = str(path)
    known = {'name', 'frame_id', 'map', 'anchors', 'point_map'}
    unknown = sorted(set(d) - known)
    if unknown:
        raise SiteError(f'{where}: unknown key(s) {unknown}; expected some of {sorted(known)}')
    name = str(d.get('name', path.stem))
    frame_id = d.get('frame_id', 'map')
    if not isinstance(frame_id, str) or not frame_id:
        raise SiteError(f'{where}: key \'frame_id\' must be a non-empty string, got {frame_id!r}')
    occ = None
    if d.get('map') is not None:
        if not isinstance(d['map'], str):
            raise SiteError(f'{where}: key \'map\' must be the path of a map.yaml, got {d["map"]!r}')
        occ = load_map_yaml(path.parent / d['map'])
    anchors_raw = d.get('anchors') or []
    if not isinstance(anchors_raw, list):
        raise SiteError(f'{where}: key \'anchors\' must be a list, got {type(anchors_raw).__name__}')
    anchors = []
    seen: set[str] = set()
    for i, a in enumerate(anchors_raw):
        w = f'{where}: anchors[{i}]'
        if not isinstance(a, dict):
            raise SiteError(f'{w}: expected a mapping with \'id\' and \'position\', got {a!r}')
        aid = _need(a, 'id', w)
        if not isinstance(aid, (str, int)) or str(aid) == '':
            raise SiteError(f'{w}: key \'id\' must be a non-empty string, got {aid!r}')
        aid = str(aid)
        if aid in seen:
            raise SiteError(f'{w}: duplicate anchor id {aid!r}')
        seen.add(aid)
        pos = _vector(_need(a, 'position', w), 3, 'position', w)
        bias = _number(a.get('bias', 0.0), 'bias', w)
        anchors.append(Anchor(id=aid, position=pos, bias=bias))
    pmap = None
    if d.get('point_map') is not None:
        pmap = _load_point_map(path.parent / str(d['point_map']), where)
    if occ is None and not anchors and pmap is None:
        raise SiteError(f'{where}: a site needs at least one of \'map\', \'anchors\' or \'point_map\'')
    return Site(name=name, frame_id=frame_id, map=occ, anchors=tuple(anchors), point_map=pmap, path=path)


def save_site(site: Site, directory: str | Path, stem: str = 'site') -> Path:
    """Write ``site`` as ``directory/<stem>.yaml`` (+ ``<stem>_map.yaml/.pgm``, ``<stem>_points.npy``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    d: dict[str, Any] = {'name': site.name, 'frame_id': site.frame_id}
    if site.map is not None:
        d['map'] = save_map_yaml(site.map, directory / f'{stem}_map.yaml').name
    if site.anchors:
        d['anchors'] = [
            {'id': a.id, 'position': [float(v) for v in a.position], **({'bias': float(a.bias)} if a.bias else {})}
            for a in site.anchors
        ]
    if site.point_map is not None:
        np.save(directory / f'{stem}_points.npy', np.asarray(site.point_map, dtype=np.float32))
        d['point_map'] = f'{stem}_points.npy'
    out = directory / f'{stem}.yaml'
    out.write_text(yaml.safe_dump(d, sort_keys=False))
    return out
