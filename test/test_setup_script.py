"""scripts/setup.sh: idempotent, and each failure mode ends with one clear line that says what to do."""
import os
import shutil
import subprocess
import sys

from conftest import ROOT

SETUP = ROOT / 'scripts' / 'setup.sh'


def _run(env_extra: dict, path: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('ROS_', 'AMENT', 'VIRTUAL_ENV'))}
    env.update(env_extra)
    if path is not None:
        env['PATH'] = path
    return subprocess.run(['bash', str(SETUP)], env=env, capture_output=True, text=True, timeout=timeout)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith('flm-setup: error:')]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_second_run_is_a_no_op():
    _run({})  # the test command ran setup already; this covers a run with a changed script too
    r = _run({})
    assert r.returncode == 0, r.stderr
    assert 'up to date' in r.stdout


def test_no_python_311():
    line = _one_error_line(_run({'FLM_PYTHON': '/bin/false'}))
    assert 'Python 3.11' in line and 'FLM_PYTHON' in line


def test_no_compiler(tmp_path):
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for tool in ('dirname', 'bash'):
        os.symlink(shutil.which(tool), bindir / tool)
    os.symlink(sys.executable, bindir / 'python3.11')
    line = _one_error_line(_run({'FLM_VENV': str(tmp_path / 'venv')}, path=str(bindir)))
    assert 'compiler' in line and 'apt-get install build-essential' in line


def test_disk_full(tmp_path):
    line = _one_error_line(_run({'FLM_VENV': str(tmp_path / 'venv'), 'FLM_SETUP_MIN_FREE_KB': str(2 ** 60)}))
    assert 'disk space' in line


def test_registry_down(tmp_path):
    line = _one_error_line(_run({
        'FLM_VENV': str(tmp_path / 'venv'), 'PIP_INDEX_URL': 'http://127.0.0.1:9/simple', 'PIP_EXTRA_INDEX_URL': '',
        'PIP_FIND_LINKS': '', 'PIP_NO_INDEX': '', 'PIP_RETRIES': '0', 'PIP_TIMEOUT': '2',
        'PIP_CONFIG_FILE': os.devnull}, timeout=300))
    assert 'registry' in line
