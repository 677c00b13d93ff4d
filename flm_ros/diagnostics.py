"""/diagnostics messages of the sensor streams (``diagnostic_msgs``), shared by the nodes that read sensors.

:func:`diagnostics_for` turns the per-stream statistics of a sensor front end
(:meth:`flm_core.frontend.SensorFrontEnd.stats`) into one ``DiagnosticStatus`` per stream; the sensor hub publishes
them alone, the localizer adds its localization status to them.
"""
from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

STALE_S = 1.0  # s since a stream's last stamp after which it is reported stale


def _rejected(s: dict) -> int:
    return sum(v for k, v in s.items() if k.startswith('rejected.') and k != 'rejected.decimated')


def diagnostics_for(node_name: str, stats: dict[str, dict], now_stamp,
                    previous: dict[str, dict] | None = None) -> DiagnosticArray:
    """One DiagnosticStatus per stream: OK while fresh; WARN when stale or when messages were rejected since the
    ``previous`` stats (the last report), so one bad message does not keep a stream WARN forever; OK 'no data'
    when absent (a missing sensor is normal)."""
    arr = DiagnosticArray()
    arr.header.stamp = now_stamp
    for name, s in stats.items():
        st = DiagnosticStatus(name=f'{node_name}: {name}', hardware_id=name)
        rejected = _rejected(s)
        recent = rejected - _rejected((previous or {}).get(name, {}))
        if s['age_s'] is None and rejected:
            st.level, st.message = DiagnosticStatus.WARN, f'no usable data: all {rejected} messages rejected'
        elif s['age_s'] is None:
            st.level, st.message = DiagnosticStatus.OK, 'no data (normal if this sensor is absent)'
        elif s['age_s'] > STALE_S:
            st.level, st.message = DiagnosticStatus.WARN, f'stale: last stamp {s["age_s"]:.1f} s ago'
        elif recent:
            st.level, st.message = DiagnosticStatus.WARN, f'{recent} messages rejected since the last report'
        else:
            st.level = DiagnosticStatus.OK
            st.message = f'{s["rate_hz"]:.1f} Hz' + (f' ({rejected} rejected in all)' if rejected else '')
        st.values = [KeyValue(key=k, value='' if v is None else (f'{v:.4f}' if isinstance(v, float) else str(v)))
                     for k, v in s.items()]
        arr.status.append(st)
    return arr
