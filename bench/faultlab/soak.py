"""Accelerated soak through the ROS-free pipeline the node runs: hours of simulated time with dropouts, RSS sampled
as it goes."""
from __future__ import annotations

import gc
import math
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import psutil

from bench.faultlab.cases import EXTEROCEPTIVE, STREAMS, fault_scenario, random_model
from bench.faultlab.plan import gt_pose, measurements, odom_at, restamp
from flm_core.geometry import se2_compose, se2_inverse


def soak(hours: float = 1.0, seed: int = 5, model: str | Path | None = None, lap: float = 120.0,
         update_rate: float = 10.0, sample_every: float = 60.0, dropout_prob: float = 0.6, full_sensors: bool = False,
         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Accelerated soak through the ROS-free pipeline (what the node runs, as ``flm-eval`` offline does): ``hours``
    of simulated time replayed as fast as possible, with dropouts, and the process RSS sampled every
    ``sample_every`` simulated seconds.

    A ``lap`` s generated scenario is replayed over and over with time running on (stamps shifted, odometry kept
    continuous); each lap starts with the operator's initial pose at the true pose (the scenario restarts there),
    and in each lap, with probability ``dropout_prob``, one stream (or every absolute sensor, or everything) drops
    out for 2-10 s. Returns the samples, the RSS slope (MB per simulated hour, least squares over the second half,
    after warm-up), and the sizes of everything that must stay bounded."""
    from flm_core import config as C  # noqa: PLC0415
    from flm_core.model.inference import DEFAULT_MODEL  # noqa: PLC0415
    from flm_ros import params as P  # noqa: PLC0415

    say = progress or (lambda s: None)
    sc = fault_scenario(duration=lap + 1.0, seed=seed, lidar3d=full_sensors, depth=full_sensors)
    site = sc.site()
    p = P.from_yaml(str(_params_file()), 'flm_localizer', P.COMMON + P.LOCALIZER)
    if model is None:
        model = DEFAULT_MODEL if DEFAULT_MODEL.is_file() else random_model(Path(tempfile.mkdtemp()) / 'flm.pt')
    p['model_path'] = str(model)
    p['global_on_start'] = False
    cfg = C.load_config(p)
    pipe = C.make_pipeline(cfg, site, C.load_pose_source(cfg, say))
    src = sorted(((a, s, m) for s, rows in measurements(sc).items() for a, m in rows), key=lambda r: r[0])
    src = [r for r in src if r[0] < lap]
    odom_rows = [(a, m) for a, s, m in src if s == 'odom']
    first_odom, last_odom = odom_at(odom_rows, 0.0), odom_at(odom_rows, lap)
    rng = np.random.default_rng(seed)
    proc = psutil.Process()
    total = hours * 3600.0
    laps = int(math.ceil(total / lap))
    period = 1.0 / update_rate
    samples: list[tuple[float, float, int, int]] = []    # sim s, wall s, rss bytes, buffered items
    latencies: list[float] = []
    anchor = np.zeros(3)                                  # odometry of lap k = anchor o odometry of the scenario
    next_step, next_sample = period, 0.0
    steps = dropped = 0
    t = 0.0
    t_wall = time.perf_counter()
    for k in range(laps):
        off = k * lap
        if k:
            anchor = se2_compose(se2_compose(anchor, last_odom), se2_inverse(first_odom))
        drop: tuple[tuple[str, ...], float, float] = ((), 0.0, 0.0)
        if rng.random() < dropout_prob:
            what = [(s,) for s in ('scan', 'uwb', 'imu', 'odom')] + [EXTEROCEPTIVE, STREAMS]
            d0 = float(rng.uniform(5.0, lap - 15.0))
            drop = (what[int(rng.integers(len(what)))], d0, d0 + float(rng.uniform(2.0, 10.0)))
        pipe.set_initial_pose(gt_pose(sc, 0.05), np.diag([0.05, 0.05, 0.02]) ** 2, off + 0.05)
        for a, stream, m in src:
            if stream in drop[0] and drop[1] <= a < drop[2]:
                dropped += 1
                continue
            t = off + a
            pipe.offer(stream, restamp(m, m.stamp + off, anchor if k else None), t)
            while t >= next_step:
                next_step += period
                res = pipe.step()
                steps += 1
                if res is not None and res.model_latency is not None:
                    latencies.append(res.model_latency)
            if t >= next_sample:
                gc.collect()
                samples.append((t, time.perf_counter() - t_wall, proc.memory_info().rss, len(pipe.front.buffer)))
                next_sample += sample_every
                if len(samples) % 10 == 0:
                    say(f'soak: {t / 60:.0f} of {total / 60:.0f} simulated min, RSS {samples[-1][2] / 1e6:.0f} MB, '
                        f'{samples[-1][1]:.0f} s wall')
            if t >= total:
                break
        if t >= total:
            break
    wall = time.perf_counter() - t_wall
    half = [s for s in samples if s[0] >= 0.5 * samples[-1][0]] if samples else []
    slope = float(np.polyfit([s[0] / 3600.0 for s in half], [s[2] / 1e6 for s in half], 1)[0]) \
        if len(half) >= 3 else math.nan
    lat = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    return {'sim_s': min(total, t), 'wall_s': wall, 'steps': steps,
            'messages_dropped': dropped, 'laps': laps, 'model': str(model),
            'samples': [{'sim_min': s[0] / 60.0, 'wall_s': s[1], 'rss_mb': s[2] / 1e6, 'buffered': s[3]}
                        for s in samples],
            'rss_slope_mb_per_h': slope, 'rss_first_mb': samples[0][2] / 1e6 if samples else math.nan,
            'rss_last_mb': samples[-1][2] / 1e6 if samples else math.nan,
            'rss_peak_mb': max(s[2] for s in samples) / 1e6 if samples else math.nan,
            'max_buffered': max((s[3] for s in samples), default=0),
            'filter_events': len(pipe.filter._events), 'pipeline_events': len(pipe.events),
            'events': [f'{t:.1f} s: {w}' for t, w in pipe.events],
            'model_latency_ms': {'p50': float(np.percentile(lat, 50)), 'p99': float(np.percentile(lat, 99))},
            'rejections': {f'{s}.{r}': c for (s, r), c in pipe.front.rejections.items()},
            'state': pipe.state.value}


def _params_file() -> Path:
    from flm_ros.bringup import default_params_file  # noqa: PLC0415
    return default_params_file()
