"""The world changes after it was mapped: two versions of one generated building.

* the **mapping-time world**: the building as generated, with the doors that were closed during the mapping run;
* the **run-time world** (what the sensors see when the robot localizes): movable furniture moved (a random shift of
  ``move_distance`` in a random direction, kept only where the new footprint lies on free floor away from doors) or
  removed, new objects added on free floor, and the doors closed at run time.

A closed door is a leaf filling its gap (the wall's thickness, wood, 2.1 m high or the wall's height). Each door's
state at mapping and at run time is drawn independently, so some differ. Everything is drawn from the scenario's
'changes' stream (seeds.py).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .buildings import MAT, Building, build_from_plan
from .config import ChangesConfig

DOOR_HEIGHT = 2.1       # m
DOOR_CLEARANCE = 1.0    # m kept free around door gaps when moving or adding objects


def _door_leaves(b: Building, closed: np.ndarray) -> np.ndarray:
    """(K, 7) wall rows (x0 y0 x1 y1 thickness material height) closing the doors where ``closed``."""
    d = b.doors[closed]
    if len(d) == 0:
        return np.zeros((0, 7))
    return np.column_stack([d[:, :4], d[:, 4], np.full(len(d), MAT['wood']), np.minimum(d[:, 5], DOOR_HEIGHT)])


def _footprint_ok(b: Building, box: np.ndarray, own: np.ndarray | None) -> bool:
    """The box's footprint (xmin ymin xmax ymax) lies on inside floor cells that are free (or belong to ``own``,
    the box's previous footprint) and at least DOOR_CLEARANCE from every door gap's centre."""
    m = b.map
    c0, r0 = m.world_to_cell(np.array([[box[0], box[1]]]))[0]
    c1, r1 = m.world_to_cell(np.array([[box[2], box[3]]]))[0]
    H, W = m.shape
    if c0 < 0 or r0 < 0 or c1 >= W or r1 >= H:
        return False
    sub = (slice(r0, r1 + 1), slice(c0, c1 + 1))
    free = b.inside[sub] | (own[sub] if own is not None else False)
    if not np.all(free):
        return False
    if len(b.doors):
        centres = 0.5 * (b.doors[:, 0:2] + b.doors[:, 2:4])
        cx = np.clip(centres[:, 0], box[0], box[2])
        cy = np.clip(centres[:, 1], box[1], box[3])
        if np.any(np.hypot(cx - centres[:, 0], cy - centres[:, 1]) < DOOR_CLEARANCE):
            return False
    return True


def _footprint_mask(b: Building, box: np.ndarray) -> np.ndarray:
    m = b.map
    c0, r0 = m.world_to_cell(np.array([[box[0], box[1]]]))[0]
    c1, r1 = m.world_to_cell(np.array([[box[2], box[3]]]))[0]
    mask = np.zeros(m.shape, dtype=bool)
    mask[max(r0, 0):r1 + 1, max(c0, 0):c1 + 1] = True
    return mask


def apply_changes(b: Building, cfg: ChangesConfig, rng: np.random.Generator) -> tuple[Building, Building, dict]:
    """(mapping-time world, run-time world, what changed) for building ``b`` (see the module docstring)."""
    walls, boxes = b.plan_arrays()
    D = len(b.doors)
    closed_map = rng.random(D) < cfg.door_closed_mapping
    closed_run = rng.random(D) < cfg.door_closed_run
    movable = b.box_movable if b.box_movable is not None else np.zeros(len(boxes), dtype=bool)
    run_boxes: list[np.ndarray] = []
    moved, removed = [], []
    for i, bx in enumerate(boxes):
        if not movable[i]:
            run_boxes.append(bx)
            continue
        u = rng.random()
        if u < cfg.remove_prob:
            removed.append(i)
            continue
        if u < cfg.remove_prob + cfg.move_prob:
            own = _footprint_mask(b, bx)
            for _ in range(10):
                dist = float(rng.uniform(*cfg.move_distance))
                ang = float(rng.uniform(-math.pi, math.pi))
                cand = bx.copy()
                cand[[0, 2]] += dist * math.cos(ang)
                cand[[1, 3]] += dist * math.sin(ang)
                if _footprint_ok(b, cand, own):
                    run_boxes.append(cand)
                    moved.append(i)
                    break
            else:
                run_boxes.append(bx)
            continue
        run_boxes.append(bx)
    added = []
    n_add = int(rng.integers(cfg.add_count[0], cfg.add_count[1] + 1))
    free = b.free_space(0.3)
    cells = np.argwhere(free)
    tries = 0
    while len(added) < n_add and len(cells) and tries < 50 * max(n_add, 1):
        tries += 1
        w, d = rng.uniform(*cfg.add_size, 2)
        h = float(rng.uniform(*cfg.add_height))
        c = b.map.cell_to_world(cells[int(rng.integers(len(cells)))][None, ::-1])[0]
        cand = np.array([c[0] - w / 2, c[1] - d / 2, c[0] + w / 2, c[1] + d / 2, 0.0, h,
                         float(rng.choice([MAT['wood'], MAT['metal'], MAT['dark']]))])
        if _footprint_ok(b, cand, None) and not any(
                cand[0] < a[2] + 0.3 and cand[2] > a[0] - 0.3 and cand[1] < a[3] + 0.3 and cand[3] > a[1] - 0.3
                for a in added):
            added.append(cand)
    run_boxes += added
    keep_mov = np.array([movable[i] for i in range(len(boxes)) if i not in set(removed)] + [True] * len(added),
                        dtype=bool)
    run_b = build_from_plan(b.family, b.size, b.ceiling, np.vstack([walls, _door_leaves(b, closed_run)]),
                            np.array(run_boxes).reshape(-1, 7), b.resolution, b.params, doors=b.doors[~closed_run],
                            box_movable=keep_mov)
    map_b = build_from_plan(b.family, b.size, b.ceiling, np.vstack([walls, _door_leaves(b, closed_map)]), boxes,
                            b.resolution, b.params, doors=b.doors[~closed_map], box_movable=movable)
    info: dict[str, Any] = {
        'doors': D, 'doors_closed_mapping': int(closed_map.sum()), 'doors_closed_run': int(closed_run.sum()),
        'doors_differ': int((closed_map != closed_run).sum()), 'moved': len(moved), 'removed': len(removed),
        'added': len(added), 'added_boxes': np.array(added).reshape(-1, 7)[:, :6].round(4).tolist()}
    return map_b, run_b, info
