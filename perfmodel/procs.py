"""Running a user's command with a time limit that ends it, children included.

``subprocess.run(timeout=)`` kills only the direct child, and then waits for its output pipes: a command
that started children of its own (a shell script, a launcher) keeps them open and the wait never ends.
:func:`run_bounded` starts the command in its own session (process group), and on expiry, Ctrl-C or any
other failure ends the whole group (SIGTERM, then SIGKILL after a grace period) and says so.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

from perfmodel.errors import PerfmodelError

#: seconds between SIGTERM and SIGKILL of a group that outlived its time
GRACE_S = 3.0


class CommandTimeout(PerfmodelError):
    """A command that did not finish within its time limit (its process group was ended)."""


def end_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """End the process group of ``proc`` (started with ``start_new_session=True``): SIGTERM, then SIGKILL to
    whatever is left after ``grace_s``; reap ``proc``."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, grace_s)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        try:  # the leader is gone; members that ignored SIGTERM may remain
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        break
    deadline = time.monotonic() + grace_s  # SIGKILL is delivered asynchronously: wait until every member is dead
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.02)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _group_alive(pgid: int) -> bool:
    """Whether a member of process group ``pgid`` still runs (zombies waiting for their reaper do not)."""
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:  # no /proc: ask the kernel (zombies count as members there)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run_bounded(argv: Sequence[str], *, timeout: float | None, env: Mapping[str, str] | None = None,
                text: bool = False, what: str = "command",
                shown: Sequence[str] | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` (stdout discarded, stderr captured) in its own process group; past ``timeout`` seconds
    (None: no limit) the group is ended and :class:`CommandTimeout` raised naming ``what`` and the
    command (``shown``, default ``argv``)."""
    argv = list(argv)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=None if env is None else
                            dict(env), text=text, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        end_group(proc)
        raise CommandTimeout(
            f"{what} did not finish within {timeout:g} s: ended it and its child processes (process group "
            f"{proc.pid}): {shlex.join(list(shown or argv))} (give a longer --timeout if it needs more)") from None
    except BaseException:  # Ctrl-C, or anything else: the command must not outlive us
        end_group(proc)
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, None, err)


__all__ = ["CommandTimeout", "GRACE_S", "end_group", "run_bounded"]
