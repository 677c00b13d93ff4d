"""What the tests that run ROS over DDS share: child processes, readiness, service calls, ROS domains.

- Child processes (:func:`python_proc`) run in a session (process group) of their own; their output is read as it
  comes (a chatty node never blocks on a full pipe) and :func:`stop_proc` stops the whole group (SIGINT, then
  SIGTERM, then SIGKILL, each with a deadline) and then any process the child had started that is still alive.
- Readiness is waited for, never slept for: :func:`wait_until` (a condition, with a deadline and a message naming
  what never became ready), :func:`wait_for_matches` (publishers and subscriptions matched on this side).
- Service calls are re-sent on a per-try timeout (:func:`call_service`): a reply the server sends before it has
  matched the client's reply reader is lost and never re-sent by DDS. Lifecycle transitions are not idempotent, so
  :func:`change_state` asks the node's state before re-sending one.
- ROS domains (:class:`DomainLeases`): each test module gets a domain id of its own (the conftest fixture), leased
  through a lock file so that parallel pytest runs on the machine never share one.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]

SpinOnce = Callable[[float], Any]          # spin_once(timeout_sec): one round of callbacks
SIGNAL_STEPS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


# ------------------------------------------------------------------------------------------------ processes
class Proc(subprocess.Popen):
    """A child process in a new session (its own process group, id = its pid), its stdout and stderr read as they
    come by a thread (:meth:`output`), so that the child never blocks on a full pipe."""

    def __init__(self, args: list[str], **kw: Any) -> None:
        super().__init__(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors='replace',
                         start_new_session=True, **kw)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name=f'output of pid {self.pid}', daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.stdout:
            self._lines.append(line)

    def output(self) -> str:
        """Everything the process has written so far."""
        return ''.join(self._lines)

    def finish(self, timeout: float) -> str:
        """Wait for the process to end by itself (stopped with :func:`stop_proc` after ``timeout`` s, which fails
        the test) and return its output."""
        try:
            self.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f'{self.args[1:3]} did not end within {timeout:.0f} s:\n{stop_proc(self)}') from None
        self._reader.join(timeout=5.0)
        return self.output()


def python_proc(args: list[str], **kw: Any) -> Proc:
    """Start ``python <args>`` with this interpreter, the test environment (its ROS domain included) and the
    repository as working directory."""
    return Proc([sys.executable, *args], cwd=str(ROOT), **kw)


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields from the state on (state, ppid, pgrp, session, ...), None when gone."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (one that has exited but was not reaped yet)."""
    st = _stat(pid)
    return st is not None and st[0] not in ('Z', 'X')


def _live_pids() -> list[int]:
    return [int(d) for d in os.listdir('/proc') if d.isdigit()]


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group ``pgid``."""
    out = []
    for pid in _live_pids():
        st = _stat(pid)
        if st is not None and st[0] not in ('Z', 'X') and int(st[2]) == pgid:
            out.append(pid)
    return out


def descendants(pid: int) -> list[int]:
    """The live processes started by ``pid``, their children and so on."""
    children: dict[int, list[int]] = {}
    for p in _live_pids():
        st = _stat(p)
        if st is not None and st[0] not in ('Z', 'X'):
            children.setdefault(int(st[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _signal_until_gone(pids: Callable[[], list[int]], send: Callable[[int], None], deadlines: Iterable[float],
                       reap: Callable[[], Any] = lambda: None) -> list[int]:
    """SIGINT, SIGTERM, SIGKILL through ``send`` while ``pids()`` is not empty, waiting the matching deadline after
    each; the signals it had to send."""
    sent = []
    for sig, deadline in zip(SIGNAL_STEPS, deadlines):
        reap()
        if not pids():
            break
        send(sig)
        sent.append(sig)
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            reap()
            if not pids():
                break
            time.sleep(0.05)
    return sent


def stop_proc(p: Proc, timeout: float = 10.0, term_after: float = 5.0, kill_after: float = 5.0) -> str:
    """Stop ``p``'s process group as Ctrl-C would: SIGINT, then SIGTERM after ``timeout`` s, then SIGKILL after
    ``term_after`` s more; then any process ``p`` had started (in other groups too) that is still alive the same
    way with ``term_after`` s per step. Returns the output, with a line naming every process that had to be
    stopped after ``p`` was gone (a child that outlived its parent)."""
    started = descendants(p.pid) if p.poll() is None else []

    def killpg(sig: int) -> None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass

    _signal_until_gone(lambda: group_members(p.pid), killpg, (timeout, term_after, kill_after), p.poll)
    p.wait()
    left = [pid for pid in started if alive(pid)]
    note = ''
    if left:
        def send(sig: int) -> None:
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        sent = _signal_until_gone(lambda: [q for q in left if alive(q)], send, (term_after,) * 3)
        note = (f'\n[stop_proc] processes {left} outlived pid {p.pid} and were stopped with '
                f'{", ".join(signal.Signals(s).name for s in sent)}\n')
    p._reader.join(timeout=5.0)
    return p.output() + note


# ------------------------------------------------------------------------------------------------ readiness
def wait_until(cond: Callable[[], Any], timeout: float, what: str, spin_once: SpinOnce | None = None,
               proc: Proc | None = None, details: Callable[[], str] | None = None) -> None:
    """Spin (or sleep) until ``cond()`` holds; fails with ``what`` (what never became ready or never happened)
    after ``timeout`` s, or at once when ``proc`` (a process it depends on) has exited, with its output."""
    end = time.monotonic() + timeout
    while True:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f'{what}: the process exited (code {proc.returncode}) first:\n{stop_proc(proc)}')
        if time.monotonic() >= end:
            extra = (details() if details else '') or (f'output so far:\n{proc.output()}' if proc else '')
            raise AssertionError(f'{what}: not within {timeout:.0f} s' + (f'\n{extra}' if extra else ''))
        if spin_once is not None:
            spin_once(0.05)
        else:
            time.sleep(0.05)


def wait_for_matches(pubs: Iterable[Any] = (), subs: Iterable[Any] = (), timeout: float = 60.0,
                     spin_once: SpinOnce | None = None, proc: Proc | None = None) -> None:
    """Until each publisher is matched with at least one subscription and each subscription with at least one
    publisher, on this side (DDS matching is two-sided: a reliable writer matched here delivers what it writes; a
    best-effort reader only takes data from writers it has matched)."""
    pubs, subs = list(pubs), list(subs)

    def unmatched() -> list[str]:
        return ([f'publisher {p.topic_name}' for p in pubs if p.get_subscription_count() == 0]
                + [f'subscription {s.topic_name}' for s in subs if s.get_publisher_count() == 0])
    wait_until(lambda: not unmatched(), timeout, 'DDS matching', spin_once, proc,
               lambda: 'never matched: ' + ', '.join(unmatched()))


# ------------------------------------------------------------------------------------------------ services
def _spin_of(node: Any) -> SpinOnce:
    ex = node.executor
    if ex is None:
        raise ValueError(f'node {node.get_name()} is not in an executor: pass spin_once')
    return lambda t: ex.spin_once(timeout_sec=t)


def call_service(node: Any, client: Any, request: Any, tries: int = 4, per_try_timeout: float = 10.0,
                 spin_once: SpinOnce | None = None) -> Any:
    """The response of ``client`` to ``request``: each try waits up to ``per_try_timeout`` s for the service and
    as long for the answer, spinning ``node`` (its executor, or ``spin_once``); a try without an answer is
    withdrawn and the request re-sent. Fails naming the service when no try got an answer. Only for requests
    that may be served twice (see :func:`change_state` for lifecycle transitions)."""
    spin = spin_once or _spin_of(node)
    available = False
    for _ in range(tries):
        end = time.monotonic() + per_try_timeout
        while not client.service_is_ready() and time.monotonic() < end:
            spin(0.05)
        if not client.service_is_ready():
            continue
        available = True
        fut = client.call_async(request)
        end = time.monotonic() + per_try_timeout
        while not fut.done() and time.monotonic() < end:
            spin(0.05)
        if fut.done():
            return fut.result()
        client.remove_pending_request(fut)
    raise AssertionError(f'{client.srv_name}: ' + ('no answer' if available else 'the service never appeared')
                         + f' in {tries} tries of {per_try_timeout:.0f} s')


def change_state(node: Any, change_client: Any, get_client: Any, transition_id: int, tries: int = 4,
                 per_try_timeout: float = 10.0, spin_once: SpinOnce | None = None) -> bool:
    """A lifecycle transition (lifecycle_msgs/Transition id) through the node's change_state service: its success.
    A try without an answer is not simply re-sent (the node may have made the transition and lost the reply; a
    second request would then be refused): the node's state decides: the transition's goal state is success, a
    transition still in progress is waited for, the state it started from means the request was lost."""
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    goal = {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
            Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED,
            Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
            Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE}[transition_id]
    spin = spin_once or _spin_of(node)
    request = ChangeState.Request(transition=Transition(id=transition_id))
    fut = None
    for _ in range(tries):
        if fut is None:
            wait_until(change_client.service_is_ready, per_try_timeout, f'{change_client.srv_name} available', spin)
            fut = change_client.call_async(request)
        end = time.monotonic() + per_try_timeout
        while not fut.done() and time.monotonic() < end:
            spin(0.05)
        if fut.done():
            return bool(fut.result().success)
        state = call_service(node, get_client, GetState.Request(), tries, per_try_timeout, spin).current_state.id
        if fut.done():
            return bool(fut.result().success)
        if state == goal:
            change_client.remove_pending_request(fut)
            return True
        if state < 10:   # a primary state, not the goal: the request was lost (10..15: transition in progress)
            change_client.remove_pending_request(fut)
            fut = None
    raise AssertionError(f'{change_client.srv_name}: no answer to transition {transition_id} in {tries} tries of '
                         f'{per_try_timeout:.0f} s')


# ------------------------------------------------------------------------------------------------ ROS domains
#: With discovery limited to localhost, domain ids 0..101 map to ports that do not collide with the ephemeral
#: port range; 0 is the default of every ROS process that sets none, so the tests do not use it.
DOMAIN_IDS = range(1, 102)
LOCK_DIR = Path(tempfile.gettempdir()) / 'flm-ros-test-domains'


class DomainLeases:
    """ROS domain ids leased for this process: one is held (a lock on LOCK_DIR/<id>.lock, released by the kernel
    if the process dies) until :meth:`release`; other processes using the same lock directory (parallel pytest
    runs of any worktree) never get an id that is held. An id leased once in this process is not leased again
    while unused ones remain, so a process an earlier test module left behind cannot talk to a later one."""

    def __init__(self, ids: range = DOMAIN_IDS, lock_dir: Path = LOCK_DIR) -> None:
        self.ids, self.lock_dir = ids, lock_dir
        self.used: set[int] = set()
        self.held: dict[int, int] = {}       # id -> fd of its lock file

    def lease(self) -> int:
        if not self.lock_dir.is_dir():
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            try:
                os.chmod(self.lock_dir, 0o1777)    # shared by every user's test runs, as /tmp
            except OSError:
                pass
        start = os.getpid() % len(self.ids)
        order = [self.ids[(start + k) % len(self.ids)] for k in range(len(self.ids))]
        for domain in [d for d in order if d not in self.used] + [d for d in order if d in self.used]:
            if domain in self.held:
                continue
            try:   # (read-only is enough for a lock, and opens another user's lock file)
                fd = os.open(self.lock_dir / f'{domain}.lock', os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.held[domain] = fd
            self.used.add(domain)
            return domain
        raise RuntimeError(f'every ROS domain id in {self.ids.start}..{self.ids.stop - 1} is held by another test '
                           f'run (locks in {self.lock_dir})')

    def release(self, domain: int) -> None:
        fd = self.held.pop(domain, None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
