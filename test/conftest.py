"""Test set-up shared by the suite: ROS isolation (a ROS domain per test module), an rclpy context fixture.

ROS isolation: discovery is limited to localhost, and every test module runs in a ROS domain of its own (the
autouse ``ros_domain`` fixture sets ROS_DOMAIN_ID before any of the module's fixtures or tests create an rclpy
context or start a process; child processes inherit it). Domain ids are leased through lock files
(ros_support.DomainLeases: ids 1..101, the range that is safe with localhost discovery), so parallel pytest runs on
the machine never share one, and an id is not reused within a run while unused ones remain: a node that an earlier
module left running, or one with the same name, cannot answer a later module's calls. (Unique node names were the
other way: they do not cover topics, which every test uses with their standard names.) FLM_TEST_DOMAIN_ID=<id>
puts every module in that one domain instead, e.g. to watch a test with the ros2 command line tools.

The helpers for tests that run ROS over DDS (child processes, readiness, service calls) are in ros_support.py.
"""
from __future__ import annotations

import os
import sys
import tempfile

import pytest

from ros_support import ROOT, DomainLeases

os.environ.setdefault('ROS_LOG_DIR', tempfile.mkdtemp(prefix='flm-roslog-'))
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('MPLBACKEND', 'Agg')

_FIXED_DOMAIN = os.environ.get('FLM_TEST_DOMAIN_ID')
_DOMAINS = DomainLeases()
# outside any module (collection, session fixtures): a domain of this run's own too
os.environ['ROS_DOMAIN_ID'] = _FIXED_DOMAIN or str(_DOMAINS.lease())
__all__ = ['ROOT']


@pytest.fixture(scope='module', autouse=True)
def ros_domain():
    """The module's own ROS domain id (ROS_DOMAIN_ID while the module runs)."""
    if _FIXED_DOMAIN:
        yield int(_FIXED_DOMAIN)
        return
    before = os.environ['ROS_DOMAIN_ID']
    domain = _DOMAINS.lease()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    try:
        yield domain
    finally:
        os.environ['ROS_DOMAIN_ID'] = before
        _DOMAINS.release(domain)


@pytest.fixture
def rclpy_context(ros_domain):
    """An initialised rclpy context for the test process, in the module's ROS domain, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=ros_domain)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture(scope='session')
def network_params(tmp_path_factory):
    """The default parameter file with ``model.refine: false``: for flm-eval runs of ``random_model`` that need
    estimates (the solve rightly refuses an untrained network's global results, and then there would be none)."""
    from flm_ros.bringup import params_file_with
    return params_file_with({'model.refine': False}, tmp_path_factory.mktemp('params') / 'network.yaml')


@pytest.fixture(scope='session')
def random_model(tmp_path_factory):
    """A real TorchScript FLM file exported from a freshly initialised network: for tests of the ROS path, where
    the weights do not matter (accuracy tests use the shipped checkpoint)."""
    import dataclasses

    import torch

    from flm_core.model.export import build_meta, export_torchscript
    from flm_core.model.net import FLM, FLMConfig
    from flm_core.model.tokens import TokenConfig
    torch.manual_seed(0)
    m = FLM(FLMConfig())
    path = tmp_path_factory.mktemp('model') / 'flm_random.pt'
    export_torchscript(m, path, build_meta(m, dataclasses.asdict(TokenConfig())))
    return path


_EXIT: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _EXIT.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process with the session's status once pytest has printed its summary, without the interpreter's
    teardown: after every test had passed, 2 of 3 full runs here died in that teardown with SIGSEGV (exit 139; the
    C extensions loaded together, rclpy, torch, ONNX Runtime and open3d, being finalised), which a runner reads as
    a failure. Each test module alone exits cleanly; the crash is not in a test."""
    if _EXIT and os.environ.get('FLM_TEST_TEARDOWN') != '1':
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT[0])
