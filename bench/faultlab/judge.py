"""Judging a run: per case, checks (what was asserted, whether it held, the measured value) and figures.

Checks that need a model which actually localizes (pose error against ground truth, automatic relocalization after a
kidnap or a bag loop, pose jumps after a long odometry gap) only run with ``trained=True``; without it the recovery
after a kidnap or a bag loop is checked through the operator's ``/initialpose``, as an operator with RViz would do
it.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.faultlab.cases import BIG_SENDS, EPOCH, EXTEROCEPTIVE, HOSTILE, REJECTION_VERDICTS, STREAMS, Case
from bench.faultlab.inject import Record
from bench.faultlab.plan import Plan, Segment, gt_pose


# ------------------------------------------------------------------------------------------------ judging
@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ''
    needs_trained: bool = False


@dataclass
class CaseResult:
    case: Case
    checks: list[Check] = field(default_factory=list)
    recover_s: float | None = None       # s of sim time from good data back to a good estimate
    jump_m: float | None = None          # m, largest pose jump not explained by motion around recovery
    peak_rss: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failures(self) -> list[str]:
        return [f'{self.case.name}: {c.what}: {c.detail}' for c in self.checks if not c.ok]

    def add(self, what: str, ok: bool, detail: str = '', needs_trained: bool = False) -> None:
        self.checks.append(Check(what, bool(ok), detail, needs_trained))


def _std(cov: np.ndarray) -> float:
    c = np.asarray(cov, float)[:2, :2]
    if not np.all(np.isfinite(c)):
        return math.inf
    return float(math.sqrt(max(np.linalg.eigvalsh(0.5 * (c + c.T)).max(), 0.0)))


def _loc(diag: dict) -> dict[str, str]:
    return diag.get('localization', (0, '', {}))[2]


def diag_counts(rec: Record, until_play: float | None = None) -> dict[str, dict[str, int]]:
    """stream -> {key: count} of the newest diagnostics (received up to ``until_play``): received, buffer.*,
    rejected.*."""
    for recv, _, st in reversed(rec.diags):
        if until_play is not None and recv > until_play:
            continue
        out: dict[str, dict[str, int]] = {}
        for hw, (_, _, values) in st.items():
            if hw in STREAMS:
                out[hw] = {k: int(v) for k, v in values.items()
                           if k == 'received' or k.startswith(('rejected.', 'buffer.'))}
        return out
    return {}


def events(rec: Record) -> list[tuple[float, str]]:
    """(stamp scenario s, what) of the pipeline events seen in the localization diagnostics."""
    seen: dict[tuple[str, str], None] = {}
    for _, _, st in rec.diags:
        ev = _loc(st).get('events', '')
        for part in filter(None, (p.strip() for p in ev.split(';'))):
            t, _, what = part.partition(': ')
            seen[(t, what)] = None
    out = []
    for t, what in seen:
        try:
            out.append((float(t) - EPOCH, what))
        except ValueError:
            continue
    return sorted(out)


def _pose_rows(plan: Plan, rec: Record) -> list[tuple[float, float, np.ndarray, np.ndarray, np.ndarray, Segment,
                                                      int]]:
    """(recv play, stamp, pose, cov, truth, segment, stamp ns) of every recorded pose."""
    rows = []
    for recv, stamp, pose, cov, ns in rec.poses:
        seg = plan.segment_of_stamp(stamp, recv)
        rows.append((recv, stamp, pose, cov, gt_pose(plan.scenario, stamp - seg.stamp_offset + seg.source_offset),
                     seg, ns))
    return rows


def _jumps(rows: list, lo: float, hi: float) -> float:
    """Largest position change between consecutive poses (stamps in [lo, hi], same segment) not explained by the
    true motion over the same interval."""
    best = 0.0
    for a, b in zip(rows, rows[1:]):
        if a[5] is not b[5] or not (lo <= a[1] - a[5].stamp_offset and b[1] - b[5].stamp_offset <= hi):
            continue
        d_est = b[2][:2] - a[2][:2]
        d_true = b[4][:2] - a[4][:2]
        best = max(best, float(np.hypot(*(d_est - d_true))))
    return best


def _err(row) -> float:
    return float(np.hypot(*(row[2][:2] - row[4][:2])))


def analyze(plan: Plan, rec: Record, trained: bool = False, recover_within: float = 1.0,
            recover_std: float = 0.5, recover_err: float = 0.5, jump_limit: float = 0.3,
            rss_growth_limit: float = 300e6) -> dict[str, CaseResult]:
    """Judge every case (and the run as a whole, under the name 'run'); see the module docstring."""
    rows = _pose_rows(plan, rec)
    ev = events(rec)
    out: dict[str, CaseResult] = {}
    run = CaseResult(Case('run', 'run', 0.0, plan.end, (), 'the whole timeline'))
    run.add('the node process stayed up', rec.exited is None, f'exited with {rec.exited}')
    run.add('poses were published', len(rows) > 10, f'{len(rows)} poses')
    tf_st = [ns for _, _, _, ns in rec.tf]
    back = [(a, b) for a, b in zip(tf_st, tf_st[1:]) if b <= a]
    run.add('TF map->odom stamps strictly increase', not back and len(tf_st) > 10,
            f'{len(back)} of {len(tf_st)} went back, e.g. {back[:2]}')
    bad_poses = sum(not (np.all(np.isfinite(r[2])) and np.all(np.isfinite(r[3]))) for r in rows)
    bad_tf = sum(not np.all(np.isfinite(p)) for _, _, p, _ in rec.tf)
    run.add('every published pose, covariance and transform is finite', bad_poses == 0 and bad_tf == 0,
            f'{bad_poses} of {len(rows)} poses and {bad_tf} of {len(rec.tf)} transforms not finite')
    # pose stamps only go back across a time jump (bag loop)
    bad_order = [(a[1], b[1]) for a, b in zip(rows, rows[1:]) if b[6] <= a[6] and a[5] is b[5]]
    run.add('/amcl_pose stamps strictly increase (within a timeline)', not bad_order, f'{bad_order[:3]}')
    rss = [b for _, _, b in rec.rss]
    run.peak_rss = max(rss) if rss else 0
    if rss:
        warm = [b for p, _, b in rec.rss if p <= plan.cases[0].t0] or rss[:4]
        base = float(np.median(warm))
        tail = [b for p, _, b in rec.rss if p >= plan.end - 3.0] or rss[-4:]
        run.add('no unbounded memory growth (RSS at the end within the limit of the start)',
                float(np.median(tail)) - base <= rss_growth_limit,
                f'start {base / 1e6:.0f} MB, end {np.median(tail) / 1e6:.0f} MB, peak {run.peak_rss / 1e6:.0f} MB')
    out['run'] = run

    def rows_in(lo: float, hi: float, seg_play0: float | None = None) -> list:
        return [r for r in rows if lo <= r[1] - r[5].stamp_offset < hi
                and (seg_play0 is None or r[5].play0 == seg_play0)]

    def diags_in(lo: float, hi: float) -> list:
        return [(recv, st) for recv, stamp, st in rec.diags if lo <= recv < hi]

    def median_before(t: float, of) -> float:
        """Median of ``of(row)`` over the poses of the 3 s before t (nan without any)."""
        pre = [of(r) for r in rows_in(t - 3.0, t)]
        return float(np.median(pre)) if pre else math.nan

    def std_before(t: float) -> float:
        return median_before(t, lambda r: _std(r[3]))

    def recovery(c: CaseResult, t_back: float, seg_play0: float | None = None, err: bool = False,
                 within: float = recover_within, pre_std: float | None = None) -> None:
        pre = std_before(c.case.t0) if pre_std is None else pre_std
        limit = max(2.0 * pre, recover_std) if math.isfinite(pre) else recover_std
        # "good" = back to what the node had before the fault: the error limit, like the std limit, follows the
        # tracking just before it (the model drifts up to ~0.45 m along the fault world's corridor, a property of
        # the model that the accuracy benches report, not of fault handling)
        pre_err = median_before(c.case.t0, _err)
        err_limit = max(recover_err, pre_err + 0.5 * recover_err) if math.isfinite(pre_err) else recover_err
        after = rows_in(t_back, t_back + 10.0, seg_play0)
        good = [r for r in after if _std(r[3]) <= limit and (not err or _err(r) <= err_limit)]
        c.recover_s = (good[0][1] - good[0][5].stamp_offset - t_back) if good else None
        what = f'a good estimate within {within:g} s of good data returning (std <= {limit:.2f} m' + \
               (f', error <= {err_limit:.2f} m)' if err else ')')
        c.add(what, c.recover_s is not None and c.recover_s <= within,
              f'recovered after {c.recover_s if c.recover_s is not None else "never"} s '
              f'({len(after)} poses after)', needs_trained=err)

    counts_end = diag_counts(rec)
    for case in plan.cases:
        c = CaseResult(case)
        seg_rss = [b for p, _, b in rec.rss if case.t0 <= p <= case.t1 + 1.0]
        c.peak_rss = max(seg_rss) if seg_rss else 0
        before = diag_counts(rec, case.t0)
        after = diag_counts(rec, case.t1 + 2.0)
        for s in STREAMS:
            for k, v in after.get(s, {}).items():
                if k.startswith('rejected.') or k in REJECTION_VERDICTS:
                    d = v - before.get(s, {}).get(k, 0)
                    if d > 0:
                        c.rejected[f'{s}.{k.split(".", 1)[1]}'] = d
        if case.kind == 'drop':
            _judge_drop(plan, rec, c, rows_in, diags_in, std_before, recovery, trained, jump_limit, rows)
        elif case.kind == 'hostile':
            for kind, (stream, reason) in HOSTILE.items():
                sent = plan.sent.get((case.name, kind), 0)
                if not sent or reason is None:
                    continue
                key = reason if reason.startswith('buffer.') else f'rejected.{reason}'
                got = after.get(stream, {}).get(key, 0) - before.get(stream, {}).get(key, 0)
                c.add(f'{kind}: counted as {stream} {key} on /diagnostics', got >= 1, f'{got} counted, {sent} sent')
            c.jump_m = _jumps(rows, case.t0, case.t1 + 1.0)
            c.add(f'no pose jump while bad messages arrive (<= {jump_limit} m beyond the true motion)',
                  c.jump_m <= jump_limit, f'{c.jump_m:.3f} m')
            pre, during = std_before(case.t0), [_std(r[3]) for r in rows_in(case.t0, case.t1 + 1.0)]
            c.add('tracking continues through the bad messages (poses keep coming, std stays low)',
                  len(during) >= 0.5 * (case.t1 - case.t0) * 1.0 and max(during, default=math.inf) <= max(
                      3 * pre, recover_std), f'{len(during)} poses, max std {max(during, default=math.nan):.3f} m')
            rcv = [r for r in rows_in(case.t0, case.t1 + 1.0)]
            if trained:
                e = max((_err(r) for r in rcv), default=math.inf)
                c.add(f'pose error stays <= {recover_err} m', e <= recover_err, f'{e:.3f} m', needs_trained=True)
        elif case.kind == 'storm':
            dur = case.t1 - case.t0
            ref0 = diag_counts(rec, case.t0 - dur - 0.5)
            ref1 = diag_counts(rec, case.t0 - 0.5)
            normal = sum(ref1.get(s, {}).get('received', 0) - ref0.get(s, {}).get('received', 0) for s in STREAMS)
            during = diag_counts(rec, case.t1)
            got = sum(during.get(s, {}).get('received', 0) - before.get(s, {}).get('received', 0) for s in STREAMS)
            c.add('the storm reached the node (more than 1.5x the messages of a normal stretch as long)',
                  got >= 1.5 * max(normal, 1), f'{got} received in the storm, {normal} before, '
                  f'{plan.sent.get((case.name, "extra"), 0)} extra sent')
            during = rows_in(case.t0, case.t1)
            c.add('poses keep coming during the storm', len(during) >= 3, f'{len(during)} poses')
            lag = [r[0] - (r[1] - r[5].stamp_offset) for r in rows_in(case.t1, case.t1 + 3.0)]
            c.add('the node keeps up: poses after the storm arrive within 1 s of sim time of their stamp',
                  bool(lag) and min(lag) <= 1.0, f'lag {min(lag, default=math.nan):.2f} s')
            c.jump_m = _jumps(rows, case.t0, case.t1 + 1.0)
            c.add(f'no pose jump (<= {jump_limit} m beyond the true motion)', c.jump_m <= jump_limit,
                  f'{c.jump_m:.3f} m')
        elif case.kind in ('big_cloud', 'big_image'):
            stream, key = ('points', 'rejected.decimated') if case.kind == 'big_cloud' else ('depth',
                                                                                              'rejected.too_large')
            got = after.get(stream, {}).get(key, 0) - before.get(stream, {}).get(key, 0)
            c.add(f'counted as {stream} {key} on /diagnostics', got >= 1, f'{got} of {BIG_SENDS} counted')
            pre = [b for p, _, b in rec.rss if case.t0 - 3.0 <= p < case.t0]
            post = [b for p, _, b in rec.rss if case.t1 + 1.0 <= p <= case.t1 + 2.0]
            later = [b for p, _, b in rec.rss if case.t1 + 5.0 <= p <= case.t1 + 6.0]
            if pre and post:
                # the allocator may keep what it once needed (glibc raises its mmap threshold after freeing big
                # blocks), so RSS need not come back down; it must stay bounded and flat
                c.add('memory stays bounded (peak within 500 MB of before)', c.peak_rss - np.median(pre) <= 500e6,
                      f'before {np.median(pre) / 1e6:.0f} MB, peak {c.peak_rss / 1e6:.0f} MB')
            if post and later:
                c.add('and flat afterwards (no growth over the next 4 s)', np.median(later) - np.median(post) <= 50e6,
                      f'{np.median(post) / 1e6:.0f} -> {np.median(later) / 1e6:.0f} MB')
            c.jump_m = _jumps(rows, case.t0, case.t1 + 1.0)
            c.add(f'no pose jump (<= {jump_limit} m beyond the true motion)', c.jump_m <= jump_limit,
                  f'{c.jump_m:.3f} m')
        elif case.kind == 'initialpose_bad':
            n0 = int(_loc(_last_diag(rec, case.t0)).get('initialpose_rejected', '0') or 0)
            n1 = int(_loc(_last_diag(rec, case.t1 + 1.0)).get('initialpose_rejected', '0') or 0)
            sent = sum(v for (cn, _), v in plan.sent.items() if cn == case.name)
            c.add('every bad /initialpose is refused and counted (initialpose_rejected)', n1 - n0 == sent,
                  f'{n1 - n0} counted, {sent} sent')
            c.jump_m = _jumps(rows, case.t0, case.t1 + 1.0)
            c.add(f'the pose does not move (<= {jump_limit} m beyond the true motion)', c.jump_m <= jump_limit,
                  f'{c.jump_m:.3f} m')
        elif case.kind == 'kidnap':
            seg = plan.segment_at(case.t0 + 1e-6)
            if case.name in plan.operator:
                t_op = plan.operator[case.name][0]
                recovery(c, t_op, seg.play0, err=True, within=recover_within)
                c.checks[-1].needs_trained = False
                c.checks[-1].what = c.checks[-1].what.replace('good data returning', "the operator's /initialpose")
            if trained:
                relo = [t for t, w in ev if case.t0 <= t <= case.t1 and w in ('lost', 'relocalized')]
                c.add('the node notices the kidnap and relocalizes on its own', bool(relo), f'events {relo}',
                      needs_trained=True)
                if case.name not in plan.operator:
                    recovery(c, case.t0, seg.play0, err=True, within=case.t1 - case.t0 - 1.0)
                lost = [t for t, w in ev if case.t0 <= t <= case.t1 and w == 'lost']
                after = rows_in(lost[0], case.t1 + 3.0, seg.play0) if lost else []
                wrong = [_err(r) > max(recover_err, 3.0 * _std(r[3])) for r in after]
                longest, start = 0.0, None   # longest stretch of consecutive confidently wrong poses (s of stamps)
                for r, w in zip(after, wrong):
                    start = (r[1] if start is None else start) if w else None
                    longest = max(longest, r[1] - start) if w else longest
                c.add('once it notices, the node is not confidently wrong (error > 3 std and > '
                      f'{recover_err} m) for more than 1 s at a time while it relocalizes (a global result can pick '
                      'the mirror image of a symmetric corridor; it must find out)',
                      bool(after) and longest <= 1.0, f'{sum(wrong)} of {len(after)} poses confidently wrong, '
                      f'longest stretch {longest:.2f} s',
                      needs_trained=True)
            post = rows_in(case.t0, case.t1, seg.play0)
            c.jump_m = max((_err(r) for r in post[-3:]), default=math.nan)
        elif case.kind == 'loop':
            seg = plan.segment_at(case.t0 + 1e-6)
            restarted = [t for t, w in ev if 'time jumped back' in w]
            c.add("the time jump is detected and reported ('time jumped back' event on /diagnostics)",
                  bool(restarted), f'events {[w for _, w in ev][-5:]}')
            loop_tf = [ns for recv, _, _, ns in rec.tf if recv >= case.t0]
            pre_tf = [ns for recv, _, _, ns in rec.tf if recv < case.t0]
            c.add('TF does not go back in time across the jump', not loop_tf or not pre_tf or min(loop_tf) > max(
                pre_tf), f'earliest stamp after the jump {min(loop_tf, default=math.nan) * 1e-9:.3f} s, latest '
                f'before {max(pre_tf, default=math.nan) * 1e-9:.3f} s (after EPOCH)')
            if case.name in plan.operator:
                t_op = plan.operator[case.name][0]
                recovery(c, t_op, seg.play0, err=True, pre_std=std_before(case.t0))
                c.checks[-1].needs_trained = False
                c.checks[-1].what = c.checks[-1].what.replace('good data returning', "the operator's /initialpose")
            elif trained:
                # after min_global_data (1 s) of new data; a symmetric building may keep it undecided a while
                recovery(c, case.t0 + 1.0, seg.play0, err=True, within=case.t1 - case.t0 - 2.0)
        out[case.name] = c
    return out


def _last_diag(rec: Record, until_play: float) -> dict:
    for recv, _, st in reversed(rec.diags):
        if recv <= until_play:
            return st
    return {}


def _judge_drop(plan: Plan, rec: Record, c: CaseResult, rows_in, diags_in, std_before, recovery, trained: bool,
                jump_limit: float, rows: list) -> None:
    case = c.case
    present = {it.stream for it in plan.items if it.stream in STREAMS and not it.case}
    gone = [s for s in case.streams if s in present]
    # 1. /diagnostics says the streams went stale
    for s in gone:
        said = [st.get(s, (0, '', {}))[1] for _, st in diags_in(case.t0 + 2.0, case.t1)]
        stale = any(m.startswith('stale') for m in said)
        c.add(f'/diagnostics reports {s} stale', stale, f'{len(said)} diagnostics in the gap, {s} status: '
              f'{sorted(set(said))[:4]}')
    blind = all(s not in present or s in case.streams for s in EXTEROCEPTIVE)
    if blind and set(case.streams) >= set(STREAMS):
        # nothing arrives: no pose may be invented, the status reports the growing uncertainty
        invented = rows_in(case.t0 + 0.5, case.t1 - 0.2)   # (the first data back is stamped before it arrives)
        c.add('no pose is published without data', not invented, f'{len(invented)} poses')
        stds = [(recv, float(_loc(st).get('position_std_m', 'nan'))) for recv, st in diags_in(case.t0 + 1.0, case.t1)]
        stds = [(r, s) for r, s in stds if math.isfinite(s)]
        grows = len(stds) >= 2 and stds[-1][1] > stds[0][1]
        c.add('the reported position std grows while blind', grows,
              f'{stds[0][1] if stds else math.nan:.3f} -> {stds[-1][1] if stds else math.nan:.3f} m')
        ages = [float(_loc(st).get('last_estimate_age_s', 'nan')) for _, st in diags_in(case.t0 + 2.0, case.t1)]
        c.add('the status reports the estimate getting old', bool(ages) and max(ages) > 1.5,
              f'max age {max(ages, default=math.nan):.1f} s')
        tf_gap = [s for recv, s, _, _ in rec.tf if case.t0 + 1.0 <= recv <= case.t1]
        c.add('map->odom keeps being re-sent (post-dated, increasing stamps)', len(tf_gap) >= 5,
              f'{len(tf_gap)} transforms')
    elif blind:
        early = [_std(r[3]) for r in rows_in(case.t0 + 0.5, case.t0 + 3.0)]
        late = [_std(r[3]) for r in rows_in(case.t1 - 2.0, case.t1)]
        grows = bool(early) and bool(late) and max(late) > max(early) * 1.2
        c.add('the covariance grows while blind', grows,
              f'{max(early, default=math.nan):.3f} -> {max(late, default=math.nan):.3f} m')
        during = rows_in(case.t0, case.t1)
        c.add('poses keep coming from odometry/IMU while blind', len(during) >= 3 * (case.t1 - case.t0),
              f'{len(during)} poses')
    recovery(c, case.t1, None, err=trained)
    c.jump_m = _jumps(rows, case.t1 - 0.5, case.t1 + 2.0)
    needs = 'odom' in case.streams or blind
    c.add(f'no pose jump on recovery (<= {jump_limit} m beyond the true motion)', c.jump_m <= jump_limit or (
        needs and not trained), f'{c.jump_m:.3f} m' + (' (not asserted without a trained model: nothing corrects '
                                                        'dead reckoning while blind)' if needs and not trained else ''),
          needs_trained=needs)


# ------------------------------------------------------------------------------------------------ reporting
def figures(results: dict[str, CaseResult], rec: Record) -> dict[str, Any]:
    """The headline figures of a run."""
    rej: Counter = Counter()   # totals of the node's last diagnostics (the whole run)
    for stream, counts in diag_counts(rec).items():
        for k, v in counts.items():
            if v and (k.startswith('rejected.') or k in REJECTION_VERDICTS):
                rej[f'{stream}.{k.split(".", 1)[1]}'] += v
    # tracking's recovery after good data returns; a kidnap and a bag loop are different (the node has to localize
    # globally again: it notices a kidnap, it waits for min_global_data after a loop, and a symmetric building can
    # keep it undecided for a while; their own checks allow for that) and are reported apart
    reloc = ('kidnap', 'loop')
    rec_s = {n: c.recover_s for n, c in results.items() if c.recover_s is not None and c.case.kind not in reloc}
    kid_s = {n: c.recover_s for n, c in results.items() if c.recover_s is not None and c.case.kind in reloc}
    jumps = {n: c.jump_m for n, c in results.items() if c.jump_m is not None and c.case.kind != 'kidnap'
             and math.isfinite(c.jump_m)}
    run = results.get('run')
    return {
        'cases': len([c for c in results if c != 'run']),
        'failed': sorted({f.split(':')[0] for c in results.values() for f in c.failures()}),
        'crashes': 0 if rec.exited is None else 1,
        'peak_rss_mb': (run.peak_rss if run else 0) / 1e6,
        'max_recover_s': max(rec_s.values()) if rec_s else None,
        'max_recover_case': max(rec_s, key=rec_s.get) if rec_s else None,
        'relocalize_s': kid_s,
        'max_jump_m': max(jumps.values()) if jumps else None,
        'max_jump_case': max(jumps, key=jumps.get) if jumps else None,
        'rejected': dict(sorted(rej.items())),
    }


def table(results: dict[str, CaseResult]) -> str:
    """A text table: case, verdict, recovery, jump, peak RSS, checks that failed."""
    lines = [f'{"case":<20} {"result":<6} {"recover s":>9} {"jump m":>7} {"peak RSS MB":>11}  notes']
    for name, c in results.items():
        fails = '; '.join(f'{k.what} ({k.detail})' for k in c.checks if not k.ok)
        lines.append(f'{name:<20} {"ok" if c.ok else "FAIL":<6} '
                     f'{"" if c.recover_s is None else f"{c.recover_s:.2f}":>9} '
                     f'{"" if c.jump_m is None or not math.isfinite(c.jump_m) else f"{c.jump_m:.2f}":>7} '
                     f'{c.peak_rss / 1e6 if c.peak_rss else 0:>11.0f}  {fails}')
    return '\n'.join(lines)



def case_json(c: CaseResult) -> dict[str, Any]:
    return {'kind': c.case.kind, 'what': c.case.what, 't0': c.case.t0, 't1': c.case.t1, 'ok': c.ok,
            'recover_s': c.recover_s, 'jump_m': c.jump_m if c.jump_m is None or math.isfinite(c.jump_m) else None,
            'peak_rss_mb': c.peak_rss / 1e6, 'rejected': c.rejected,
            'checks': [dataclasses.asdict(k) for k in c.checks]}

