"""Fault injection against the real localizer node over DDS (test and benchmark tooling, not installed with the
package): a generated scenario becomes a message stream with faults applied, published in sim time with its own
``/clock``; what the node publishes is recorded and judged.

::

    from bench.faultlab import cases, inject, judge, plan
    sc = cases.fault_scenario(seed=5)                       # a short generated building + robot run
    p = plan.build_plan(sc, cases.default_cases())          # the message stream with every case's faults applied
    rec = inject.run_plan(p, node_pid, context=ctx)         # publish it (rate x faster than real time) and record
    results = judge.analyze(p, rec)                         # per case: checks (what was asserted) and figures

Modules, one job each: :mod:`~bench.faultlab.cases` (the case table and the world), :mod:`~bench.faultlab.plan`
(the timeline), :mod:`~bench.faultlab.inject` (the node process and the DDS injector that plays a plan and records
what comes back), :mod:`~bench.faultlab.judge` (the checks on the record, figures, the table),
:mod:`~bench.faultlab.matrix` (the whole matrix against a fresh node, as ``bench/faults.py`` and
``test/test_faults.py`` run it) and :mod:`~bench.faultlab.soak` (hours through the ROS-free pipeline).

The node under test runs as its own process with ``use_sim_time:=true`` and the parameters of
:func:`bench.faultlab.inject.node_parameters`. Import it with the repository root on ``sys.path`` (the bench
scripts put it there; the tests run from it).
"""
