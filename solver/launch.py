"""A run on several MPI ranks ends as a whole: no rank, and no mpirun, outlives a failure.

- The front process of `sinter run --np N` starts mpirun in a session of its own, forwards
  SIGINT, SIGTERM and SIGHUP to it (and kills what is left after STOP_SECONDS), and has the
  kernel send mpirun SIGTERM should the front process itself be killed (prctl
  PR_SET_PDEATHSIG, Linux).
- Every rank asks the kernel for SIGKILL when its launcher (mpirun, srun's step daemon)
  ends: a rank without a launcher has nobody to report to.
- An exception on some ranks but not all would leave the others waiting in a collective
  forever. The failing ranks wait AGREEMENT_SECONDS for the others to fail too (an
  error every rank reaches, such as a case-file error, ends the run normally); otherwise
  a failing rank reports its error and aborts the whole job (MPI_Abort).
"""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_SECONDS = 15.0  # mpirun's time to take its ranks down after a forwarded signal
AGREEMENT_SECONDS = 10.0  # a failure every rank reaches arrives within this on all of them
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_failure_comm = None  # a duplicate of COMM_WORLD: the failure agreement's own messages


def die_with_parent(signum: int = signal.SIGKILL) -> bool:
    """Have the kernel send `signum` to this process when its parent ends (Linux only:
    elsewhere nothing happens and False is returned)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent ended before prctl took effect
        os.kill(os.getpid(), signum)
    return True


def run_mpirun(command: list[str]) -> int:
    """Run mpirun (`command`) to its end and return its exit status; a SIGINT, SIGTERM or
    SIGHUP to this process stops it and all its ranks, and then the status is 128 + the
    signal's number, as a shell reports a process the signal ended."""
    process = subprocess.Popen(command, start_new_session=True,
                               preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    received: list[int] = []

    def forward(signum, frame):
        if not received:
            logger.debug("signal %d: stopping mpirun", signum)
            _signal(process, signum)
        received.append(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        deadline = None
        while process.poll() is None:
            if received and deadline is None:
                deadline = time.monotonic() + STOP_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                _signal(process, signal.SIGKILL)  # the ranks follow it (die_with_parent)
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        return 128 + received[0]
    return process.returncode if process.returncode >= 0 else 128 - process.returncode


def _signal(process: subprocess.Popen, signum: int):
    """`signum` to mpirun's process group (its session: mpirun, and the ranks unless it
    moved them elsewhere)."""
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def prepare_for_failures(comm):
    """Collective, before any work: the communicator of the failure agreement."""
    global _failure_comm
    if comm.size > 1 and _failure_comm is None:
        _failure_comm = comm.Dup()


def failed_together(error: BaseException) -> bool:
    """Whether every rank fails with an error at this point (each calls this for its own
    error; the answer is kept with the error, so asking again costs nothing). Without
    prepare_for_failures (one rank) a failure is everyone's."""
    known = getattr(error, "_sinter_failed_together", None)
    if known is not None:
        return known
    together = arrive_together()
    try:
        error._sinter_failed_together = together
    except AttributeError:
        pass
    return together


def arrive_together() -> bool:
    """Whether every rank arrives at this call within AGREEMENT_SECONDS (a rank that
    failed alone, before a collective step such as closing files, learns that the others
    are elsewhere and must not be waited for). Without prepare_for_failures: True."""
    if _failure_comm is None:
        return True
    request = _failure_comm.Ibarrier()
    deadline = time.monotonic() + AGREEMENT_SECONDS
    while not request.Test():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def abort_alone(comm, report: str, status: int):
    """Print `report` (this rank's error) and take every rank of the job down."""
    print(report, file=sys.stderr, flush=True)
    comm.Abort(status)
