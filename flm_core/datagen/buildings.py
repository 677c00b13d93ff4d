"""Procedural buildings: floor-plan families -> wall segments, boxes, materials, 3D extrusion and an occupancy grid.

Families (each a seeded distribution, sizes in metres, drawn uniformly from ``FAMILY_SIZES`` unless overridden):

- ``office``: rooms off one or two corridors, one door per room, drywall/glass partitions, concrete shell, desks
  (table tops at 0.72-0.78 m, free below), cabinets (1.2-2.0 m) and low boxes.
- ``corridor``: long symmetric ring corridor(s) around a central block, periodic identical niches/benches on both
  sides (perceptual aliasing), optional symmetric cross corridor.
- ``hall``: open hall, a regular grid of pillars, a few low stands; high ceiling.
- ``warehouse``: metal shelf rows (2-6 m high) with aisles and cross aisles, loading areas at both ends.
- ``cluttered``: irregular orthogonal outline (corner notches), wall fragments at arbitrary angles, dense clutter of
  varied heights.

Geometry: the building occupies [0, size_x] x [0, size_y] in the map frame. Walls are centre-line segments with a
thickness, a material and a height (floor to ``wall_height``); boxes are axis-aligned, solid between ``zlo`` and
``zhi``. The occupancy grid (``OccupancyMap``: row 0 = lowest y; 100 occupied, 0 free, -1 outside the building) has a
0.5 m margin around the building. ``zlo``/``zhi``/``material`` grids give the 3D extrusion per cell for ray casting.
Door gaps are kept (``Building.doors``) and furniture is marked movable (``Building.box_movable``), so that the world
can change after mapping (changes.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from ..site import OccupancyMap
from .config import BuildingConfig, ConfigError


@dataclass(frozen=True)
class Material:
    name: str
    uwb_bias: float          # m of positive UWB range bias per crossing (first-path delay)
    attenuation_db: float    # dB per crossing (links beyond the budget are blocked)
    lidar: str = 'solid'     # 'solid', 'glass' (returns often lost) or 'dark' (low reflectivity)


#: Material table; the index is the material id used in grids and arrays.
MATERIALS: tuple[Material, ...] = (
    Material('air', 0.0, 0.0),
    Material('concrete', 0.45, 12.0),
    Material('drywall', 0.12, 3.0),
    Material('glass', 0.05, 2.0, 'glass'),
    Material('metal', 0.35, 15.0),
    Material('wood', 0.08, 2.5),
    Material('dark', 0.08, 2.5, 'dark'),
)
MAT = {m.name: i for i, m in enumerate(MATERIALS)}
#: (256,) bool per material id: glass (lidar returns often lost) and dark (low reflectivity) surfaces.
LIDAR_GLASS = np.array([m.lidar == 'glass' for m in MATERIALS] + [False] * (256 - len(MATERIALS)))
LIDAR_DARK = np.array([m.lidar == 'dark' for m in MATERIALS] + [False] * (256 - len(MATERIALS)))

#: Default size ranges (size_x, size_y) per family, metres.
FAMILY_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    'office': ((15.0, 45.0), (12.0, 30.0)),
    'corridor': ((30.0, 80.0), (10.0, 24.0)),
    'hall': ((15.0, 50.0), (12.0, 40.0)),
    'warehouse': ((25.0, 80.0), (20.0, 60.0)),
    'cluttered': ((10.0, 25.0), (10.0, 20.0)),
}
#: Default ceiling heights per family, metres.
FAMILY_CEILING: dict[str, tuple[float, float]] = {
    'office': (2.6, 3.2), 'corridor': (2.6, 3.5), 'hall': (4.0, 8.0), 'warehouse': (6.0, 10.0),
    'cluttered': (2.5, 3.5),
}
MARGIN = 0.5


@dataclass
class Building:
    """A generated building. Arrays: walls (W, 4) x0 y0 x1 y1; wall_thickness/wall_height (W,) m;
    wall_material (W,) int; boxes (B, 6) xmin ymin xmax ymax zlo zhi; box_material (B,) int."""

    family: str
    size: tuple[float, float]
    ceiling: float
    walls: np.ndarray
    wall_thickness: np.ndarray
    wall_material: np.ndarray
    wall_height: np.ndarray
    boxes: np.ndarray
    box_material: np.ndarray
    map: OccupancyMap
    zlo: np.ndarray            # (H, W) float32, bottom of the solid part of each cell (inf where free)
    zhi: np.ndarray            # (H, W) float32, top (-inf where free)
    material: np.ndarray       # (H, W) uint8 material id
    inside: np.ndarray         # (H, W) bool, inside the building outline
    params: dict[str, Any] = field(default_factory=dict)
    doors: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))  # (D, 6) x0 y0 x1 y1 thickness height of
    #                                                                      each door gap (open in this geometry)
    box_movable: np.ndarray | None = None  # (B,) bool, furniture that can be moved (None: nothing)

    def plan_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The geometry as :func:`build_from_plan` takes it: walls (W, 7), boxes (B, 7)."""
        walls = np.column_stack([self.walls, self.wall_thickness, self.wall_material, self.wall_height])
        boxes = np.column_stack([self.boxes, self.box_material])
        return walls.reshape(-1, 7), boxes.reshape(-1, 7)

    @property
    def resolution(self) -> float:
        return self.map.resolution

    def solid(self) -> np.ndarray:
        """(H, W) bool, any obstacle at any height."""
        return self.zhi > self.zlo

    def free_space(self, clearance: float) -> np.ndarray:
        """(H, W) bool, inside cells at least ``clearance`` metres from every obstacle cell."""
        d = ndimage.distance_transform_edt(~self.solid()) * self.resolution
        return (d > clearance) & self.inside


class _Plan:
    def __init__(self) -> None:
        self.walls: list[tuple[float, float, float, float, float, int, float]] = []
        self.boxes: list[tuple[float, float, float, float, float, float, int, bool]] = []  # ..., movable
        self.keepout: list[tuple[float, float, float]] = []  # (x, y, radius): door zones without furniture
        self.doors: list[tuple[float, float, float, float, float, float]] = []  # gap x0 y0 x1 y1 thickness height

    def wall(self, p0: tuple[float, float], p1: tuple[float, float], thick: float, mat: int, h: float,
             doors: list[tuple[float, float]] = ()) -> None:
        """A wall from p0 to p1 with door gaps (distance of the gap centre from p0, width)."""
        (x0, y0), (x1, y1) = p0, p1
        L = math.hypot(x1 - x0, y1 - y0)
        if L <= 1e-9:
            return
        ux, uy = (x1 - x0) / L, (y1 - y0) / L
        cuts = [0.0]
        for c, w in sorted(doors):
            a, b = max(0.0, c - w / 2), min(L, c + w / 2)
            cuts += [a, b]
            self.keepout.append((x0 + ux * c, y0 + uy * c, 1.3))
            self.doors.append((x0 + ux * a, y0 + uy * a, x0 + ux * b, y0 + uy * b, thick, h))
        cuts.append(L)
        for a, b in zip(cuts[0::2], cuts[1::2]):
            if b - a > 0.05:
                self.walls.append((x0 + ux * a, y0 + uy * a, x0 + ux * b, y0 + uy * b, thick, mat, h))

    def box(self, x0: float, y0: float, x1: float, y1: float, zlo: float, zhi: float, mat: int,
            movable: bool = False) -> None:
        self.boxes.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), zlo, zhi, mat, movable))

    def outline(self, pts: list[tuple[float, float]], thick: float, mat: int, h: float) -> None:
        for i in range(len(pts)):
            self.wall(pts[i], pts[(i + 1) % len(pts)], thick, mat, h)

    def free_of_keepout(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        for kx, ky, r in self.keepout:
            cx, cy = min(max(kx, x0), x1), min(max(ky, y0), y1)
            if math.hypot(cx - kx, cy - ky) < r:
                return False
        return True


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


# ----------------------------------------------------------------------------------------------- families
def _furnish(plan: _Plan, rng: np.random.Generator, region: tuple[float, float, float, float], density: float,
             kinds: tuple[str, ...], ceiling: float) -> None:
    """Random furniture inside region (x0, y0, x1, y1) covering about ``density`` of its area."""
    x0, y0, x1, y1 = region
    area = max(0.0, (x1 - x0) * (y1 - y0))
    covered, tries = 0.0, 0
    while covered < density * area and tries < 200:
        tries += 1
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == 'desk':
            w, d, zlo, zhi, mat = rng.uniform(1.2, 1.8), rng.uniform(0.6, 0.9), 0.70, rng.uniform(0.72, 0.78), MAT['wood']
        elif kind == 'cabinet':
            w, d, zlo, zhi, mat = rng.uniform(0.5, 1.2), rng.uniform(0.4, 0.6), 0.0, rng.uniform(1.2, 2.0), \
                MAT['metal'] if rng.random() < 0.5 else MAT['wood']
        elif kind == 'low':
            w, d, zlo, zhi, mat = rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0), 0.0, rng.uniform(0.3, 0.6), \
                MAT['dark'] if rng.random() < 0.4 else MAT['wood']
        else:  # 'clutter': anything
            w, d, zlo, zhi = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), 0.0, rng.uniform(0.3, min(2.2, ceiling))
            mat = int(rng.choice([MAT['wood'], MAT['metal'], MAT['dark']]))
        if rng.random() < 0.5:
            w, d = d, w
        if x1 - x0 < w + 0.2 or y1 - y0 < d + 0.2:
            continue
        bx, by = rng.uniform(x0 + 0.1, x1 - w - 0.1), rng.uniform(y0 + 0.1, y1 - d - 0.1)
        if not plan.free_of_keepout(bx, by, bx + w, by + d):
            continue
        plan.box(bx, by, bx + w, by + d, zlo, zhi, int(mat), movable=True)
        covered += w * d


def _office(plan: _Plan, rng: np.random.Generator, sx: float, sy: float, h: float, cfg: BuildingConfig,
            p: dict) -> None:
    te, ti = _u(rng, cfg.exterior_wall_thickness), _u(rng, cfg.interior_wall_thickness)
    plan.outline([(0, 0), (sx, 0), (sx, sy), (0, sy)], te, MAT['concrete'], h)
    n_corr = 1 if sy < 24 else 2
    cw = rng.uniform(1.6, 2.4)
    centres = [sy * (k + 1) / (n_corr + 1) + rng.uniform(-0.1, 0.1) * sy / (n_corr + 1) for k in range(n_corr)]
    p.update(corridors=n_corr, corridor_width=round(cw, 3), exterior_thickness=round(te, 3),
             interior_thickness=round(ti, 3))
    edges = [0.0]
    for c in centres:
        edges += [c - cw / 2, c + cw / 2]
    edges.append(sy)
    density = _u(rng, cfg.furniture_density)
    for band in range(n_corr + 1):
        ylo, yhi = edges[2 * band], edges[2 * band + 1]
        if yhi - ylo < 2.5:
            continue
        # room partition along x
        xs = [0.0]
        while xs[-1] < sx:
            xs.append(xs[-1] + rng.uniform(3.0, 6.5))
        xs[-1] = sx
        if len(xs) > 2 and xs[-1] - xs[-2] < 2.5:
            xs.pop(-2)
        for k in range(1, len(xs) - 1):
            plan.wall((xs[k], ylo), (xs[k], yhi), ti, MAT['drywall'], h)
        # walls onto the corridor(s) with one door per room
        for side_y, is_edge in ((ylo, band > 0), (yhi, band < n_corr)):
            if not is_edge:
                continue
            for k in range(len(xs) - 1):
                a, b = xs[k], xs[k + 1]
                dw = _u(rng, cfg.door_width)
                c = rng.uniform(min(0.6 + dw / 2, (b - a) / 2), max((b - a) - 0.6 - dw / 2, (b - a) / 2))
                mat = MAT['glass'] if rng.random() < cfg.glass_wall_prob else MAT['drywall']
                plan.wall((a, side_y), (b, side_y), ti, mat, h, doors=[(c, dw)])
        for k in range(len(xs) - 1):
            _furnish(plan, rng, (xs[k] + ti, ylo + ti, xs[k + 1] - ti, yhi - ti), density,
                     ('desk', 'cabinet', 'low'), h)


def _corridor(plan: _Plan, rng: np.random.Generator, sx: float, sy: float, h: float, cfg: BuildingConfig,
              p: dict) -> None:
    te, ti = _u(rng, cfg.exterior_wall_thickness), _u(rng, cfg.interior_wall_thickness)
    cw = rng.uniform(2.0, 3.0)
    plan.outline([(0, 0), (sx, 0), (sx, sy), (0, sy)], te, MAT['concrete'], h)
    bx0, by0, bx1, by1 = cw + te / 2, cw + te / 2, sx - cw - te / 2, sy - cw - te / 2
    cross = rng.random() < 0.5 and bx1 - bx0 > 12
    p.update(corridor_width=round(cw, 3), cross_corridor=bool(cross), exterior_thickness=round(te, 3))
    mat = MAT['concrete'] if rng.random() < 0.5 else MAT['drywall']
    if by1 - by0 > 1.0 and bx1 - bx0 > 1.0:
        if cross:
            xm = sx / 2
            plan.outline([(bx0, by0), (xm - cw / 2, by0), (xm - cw / 2, by1), (bx0, by1)], ti, mat, h)
            plan.outline([(xm + cw / 2, by0), (bx1, by0), (bx1, by1), (xm + cw / 2, by1)], ti, mat, h)
        else:
            plan.outline([(bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1)], ti, mat, h)
    # periodic symmetric niches (benches / radiators) on the outer walls, mirrored top/bottom
    period = rng.uniform(4.0, 8.0)
    depth = rng.uniform(0.25, 0.45)
    length = rng.uniform(0.8, 1.6)
    zhi = rng.uniform(0.4, 1.0)
    x = period / 2
    while x + length < sx - cw:
        if x > cw:
            plan.box(x, te / 2, x + length, te / 2 + depth, 0.0, zhi, MAT['metal'])
            plan.box(x, sy - te / 2 - depth, x + length, sy - te / 2, 0.0, zhi, MAT['metal'])
        x += period
    p.update(niche_period=round(period, 3))


def _hall(plan: _Plan, rng: np.random.Generator, sx: float, sy: float, h: float, cfg: BuildingConfig,
          p: dict) -> None:
    te = _u(rng, cfg.exterior_wall_thickness)
    plan.outline([(0, 0), (sx, 0), (sx, sy), (0, sy)], te, MAT['concrete'], h)
    sp = rng.uniform(5.0, 10.0)
    w = rng.uniform(0.4, 0.8)
    nx, ny = max(1, int(sx / sp)), max(1, int(sy / sp))
    ox, oy = (sx - (nx - 1) * sp) / 2, (sy - (ny - 1) * sp) / 2
    for i in range(nx):
        for j in range(ny):
            cx, cy = ox + i * sp, oy + j * sp
            if 1.5 < cx < sx - 1.5 and 1.5 < cy < sy - 1.5:
                plan.box(cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2, 0.0, h, MAT['concrete'])
    p.update(pillar_spacing=round(sp, 3), pillar_width=round(w, 3), exterior_thickness=round(te, 3))
    if rng.random() < 0.5:  # a glass partition
        y = rng.uniform(0.3, 0.7) * sy
        plan.wall((0, y), (sx * rng.uniform(0.3, 0.6), y), 0.1, MAT['glass'], h,
                  doors=[(rng.uniform(1.5, 3.0), 2.0)])
    _furnish(plan, rng, (te, te, sx - te, sy - te), 0.3 * _u(rng, cfg.furniture_density), ('low', 'cabinet'), h)


def _warehouse(plan: _Plan, rng: np.random.Generator, sx: float, sy: float, h: float, cfg: BuildingConfig,
               p: dict) -> None:
    te = _u(rng, cfg.exterior_wall_thickness)
    plan.outline([(0, 0), (sx, 0), (sx, sy), (0, sy)], te, MAT['concrete'], h)
    depth = rng.uniform(1.0, 1.3) * (2 if rng.random() < 0.5 else 1)
    aisle = rng.uniform(2.5, 4.0)
    sh = min(h - 0.3, rng.uniform(2.0, 6.0))
    end = rng.uniform(3.0, 6.0)
    seg = rng.uniform(12.0, 25.0)
    cross = rng.uniform(2.5, 3.5)
    p.update(shelf_depth=round(depth, 3), aisle=round(aisle, 3), shelf_height=round(sh, 3),
             exterior_thickness=round(te, 3))
    y = aisle
    while y + depth < sy - aisle:
        x = end
        while x < sx - end - 2.0:
            x1 = min(x + seg, sx - end)
            plan.box(x, y, x1, y + depth, 0.0, sh, MAT['metal'])
            x = x1 + cross
        y += depth + aisle
    _furnish(plan, rng, (te, te, end - 0.5, sy - te), _u(rng, cfg.furniture_density), ('low', 'clutter'), h)


def _cluttered(plan: _Plan, rng: np.random.Generator, sx: float, sy: float, h: float, cfg: BuildingConfig,
               p: dict) -> None:
    te, ti = _u(rng, cfg.exterior_wall_thickness), _u(rng, cfg.interior_wall_thickness)
    notch = [rng.random() < 0.5 for _ in range(4)]
    nw = [rng.uniform(0.2, 0.4) * sx for _ in range(4)]
    nh = [rng.uniform(0.2, 0.4) * sy for _ in range(4)]
    pts: list[tuple[float, float]] = []
    # counter-clockwise corners with the direction back along the previous edge and along the next edge
    corners = [((0.0, 0.0), (0, 1), (1, 0)), ((sx, 0.0), (-1, 0), (0, 1)), ((sx, sy), (0, -1), (-1, 0)),
               ((0.0, sy), (1, 0), (0, -1))]
    for k, ((cx, cy), back, nxt) in enumerate(corners):
        if not notch[k]:
            pts.append((cx, cy))
            continue
        lb = nh[k] if back[0] == 0 else nw[k]
        ln = nw[k] if nxt[1] == 0 else nh[k]
        pts.append((cx + back[0] * lb, cy + back[1] * lb))
        pts.append((cx + back[0] * lb + nxt[0] * ln, cy + back[1] * lb + nxt[1] * ln))
        pts.append((cx + nxt[0] * ln, cy + nxt[1] * ln))
    plan.outline(pts, te, MAT['concrete'], h)
    holes = []
    for k, ((cx, cy), back, nxt) in enumerate(corners):
        if notch[k]:
            lb = nh[k] if back[0] == 0 else nw[k]
            ln = nw[k] if nxt[1] == 0 else nh[k]
            xs = (cx, cx + back[0] * lb + nxt[0] * ln)
            ys = (cy, cy + back[1] * lb + nxt[1] * ln)
            holes.append((min(xs) - te, min(ys) - te, max(xs) + te, max(ys) + te))
    p.update(notches=[bool(n) for n in notch], exterior_thickness=round(te, 3))
    for _ in range(int(rng.integers(2, 7))):
        x, y = rng.uniform(1.5, sx - 1.5), rng.uniform(1.5, sy - 1.5)
        a, L = rng.uniform(0, math.pi), rng.uniform(1.0, 4.0)
        plan.wall((x, y), (x + L * math.cos(a), y + L * math.sin(a)), ti,
                  int(rng.choice([MAT['drywall'], MAT['glass'], MAT['concrete']])), h)
    _furnish(plan, rng, (te, te, sx - te, sy - te), 2.0 * _u(rng, cfg.furniture_density), ('clutter', 'low', 'desk'), h)
    plan.boxes = [bx for bx in plan.boxes  # nothing in the cut-out corners
                  if not any(bx[0] < hx1 and bx[2] > hx0 and bx[1] < hy1 and bx[3] > hy0 for hx0, hy0, hx1, hy1 in holes)]


_FAMILY_FN = {'office': _office, 'corridor': _corridor, 'hall': _hall, 'warehouse': _warehouse,
              'cluttered': _cluttered}


# ----------------------------------------------------------------------------------------------- rasterisation
def build_from_plan(family: str, size: tuple[float, float], ceiling: float, walls: np.ndarray, boxes: np.ndarray,
                    resolution: float, params: dict | None = None, doors: np.ndarray | None = None,
                    box_movable: np.ndarray | None = None) -> Building:
    """Rasterise explicit geometry. walls: (W, 7) x0 y0 x1 y1 thickness material height; boxes: (B, 7)
    xmin ymin xmax ymax zlo zhi material. A cell is a wall cell when its centre lies within thickness/2 of the
    segment (segment extended by thickness/2 at both ends); a box cell when its centre lies inside the box.
    doors (D, 6) and box_movable (B,) are kept as they are (see :class:`Building`)."""
    walls = np.asarray(walls, dtype=np.float64).reshape(-1, 7)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    sx, sy = size
    res = float(resolution)
    W = int(math.ceil((sx + 2 * MARGIN) / res))
    H = int(math.ceil((sy + 2 * MARGIN) / res))
    origin = np.array([-MARGIN, -MARGIN, 0.0])
    zlo = np.full((H, W), np.inf, dtype=np.float32)
    zhi = np.full((H, W), -np.inf, dtype=np.float32)
    mat = np.zeros((H, W), dtype=np.uint8)

    def cell_range(lo: float, hi: float, o: float, n: int) -> tuple[int, int]:
        a = max(0, int(math.floor((lo - o) / res - 0.5)))
        b = min(n, int(math.ceil((hi - o) / res + 0.5)) + 1)
        return a, b

    for x0, y0, x1, y1, t, m, h in walls:
        L = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / L, (y1 - y0) / L
        c0, c1 = cell_range(min(x0, x1) - t, max(x0, x1) + t, origin[0], W)
        r0, r1 = cell_range(min(y0, y1) - t, max(y0, y1) + t, origin[1], H)
        if c0 >= c1 or r0 >= r1:
            continue
        cx = origin[0] + (np.arange(c0, c1) + 0.5) * res
        cy = origin[1] + (np.arange(r0, r1) + 0.5) * res
        dx, dy = cx[None, :] - x0, cy[:, None] - y0
        s = dx * ux + dy * uy
        d = np.abs(-dx * uy + dy * ux)
        hit = (s >= -t / 2) & (s <= L + t / 2) & (d <= t / 2)
        sub = (slice(r0, r1), slice(c0, c1))
        zlo[sub] = np.where(hit, np.minimum(zlo[sub], 0.0), zlo[sub])
        zhi[sub] = np.where(hit, np.maximum(zhi[sub], h), zhi[sub])
        mat[sub] = np.where(hit, int(m), mat[sub])
    for bx0, by0, bx1, by1, blo, bhi, m in boxes:
        c0 = max(0, int(math.ceil((bx0 - origin[0]) / res - 0.5)))
        c1 = min(W, int(math.floor((bx1 - origin[0]) / res - 0.5)) + 1)
        r0 = max(0, int(math.ceil((by0 - origin[1]) / res - 0.5)))
        r1 = min(H, int(math.floor((by1 - origin[1]) / res - 0.5)) + 1)
        if c0 >= c1 or r0 >= r1:
            continue
        sub = (slice(r0, r1), slice(c0, c1))
        zlo[sub] = np.minimum(zlo[sub], blo)
        zhi[sub] = np.maximum(zhi[sub], bhi)
        mat[sub] = np.where(mat[sub] == 0, int(m), mat[sub])
    solid = zhi > zlo
    # outside = free cells connected to the grid border
    lab, _ = ndimage.label(~solid)
    border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    outside = np.isin(lab, border[border > 0])
    inside = ~solid & ~outside
    grid = np.zeros((H, W), dtype=np.int8)
    grid[solid] = 100
    grid[outside] = -1
    return Building(
        family=family, size=(float(sx), float(sy)), ceiling=float(ceiling),
        walls=walls[:, :4].copy(), wall_thickness=walls[:, 4].copy(), wall_material=walls[:, 5].astype(np.int64),
        wall_height=walls[:, 6].copy(), boxes=boxes[:, :6].copy(), box_material=boxes[:, 6].astype(np.int64),
        map=OccupancyMap(grid=grid, resolution=res, origin=origin), zlo=zlo, zhi=zhi, material=mat, inside=inside,
        params=dict(params or {}), doors=np.zeros((0, 6)) if doors is None else np.asarray(doors, float).reshape(-1, 6),
        box_movable=None if box_movable is None else np.asarray(box_movable, dtype=bool).reshape(-1))


def generate_building(cfg: BuildingConfig, rng: np.random.Generator, robot_radius: float = 0.25) -> Building:
    """Draw one building from ``cfg`` (see the module docstring)."""
    family = str(cfg.families[int(rng.integers(len(cfg.families)))])
    rx, ry = FAMILY_SIZES[family]
    sx = _u(rng, cfg.size_x if cfg.size_x is not None else rx)
    sy = _u(rng, cfg.size_y if cfg.size_y is not None else ry)
    h = _u(rng, cfg.ceiling_height if cfg.ceiling_height is not None else FAMILY_CEILING[family])
    if min(sx, sy) < 4 * robot_radius + 1.0:
        raise ConfigError(f'building.size_x/size_y: a {sx:.1f} x {sy:.1f} m building is too small for a robot of '
                          f'radius {robot_radius} m (motion.robot_radius)')
    plan = _Plan()
    params: dict[str, Any] = {'family': family, 'size_x': round(sx, 4), 'size_y': round(sy, 4),
                              'ceiling': round(h, 4)}
    _FAMILY_FN[family](plan, rng, sx, sy, h, cfg, params)
    boxes = np.array([bx[:7] for bx in plan.boxes], dtype=np.float64).reshape(-1, 7)
    b = build_from_plan(family, (sx, sy), h, np.array(plan.walls).reshape(-1, 7), boxes, cfg.resolution, params,
                        doors=np.array(plan.doors).reshape(-1, 6),
                        box_movable=np.array([bool(bx[7]) for bx in plan.boxes], dtype=bool))
    if not b.free_space(robot_radius).any():
        raise ConfigError(f'motion.robot_radius: no free space left for a robot of radius {robot_radius} m in this '
                          f'{family} building ({sx:.1f} x {sy:.1f} m)')
    return b
