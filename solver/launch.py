"""A run on several MPI ranks ends as a whole: no rank, and no mpirun, outlives a failure.

- The front process of `sinter run --np N` starts mpirun in a session of its own and has
  the kernel send mpirun SIGTERM should the front process itself be killed (prctl
  PR_SET_PDEATHSIG, Linux). A first SIGINT or SIGTERM to it asks the ranks to stop at their
  next step boundary (STOP_REQUEST, which mpirun forwards to every rank; the ranks take it
  as they take SIGINT and SIGTERM, solver/stopping.py) and leave an incomplete result; if
  they have not ended within GRACE_SECONDS, or at a second signal, or at SIGHUP, the signal
  goes to mpirun and the ranks, and what is left is killed after STOP_SECONDS.
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
GRACE_SECONDS = 300.0  # the ranks' time to finish their step and write after a stop request
STOP_REQUEST = signal.SIGUSR1  # Open MPI's mpirun forwards it to every rank
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
    """Run mpirun (`command`) to its end and return its exit status. A first SIGINT or
    SIGTERM to this process asks the ranks to stop at a step boundary (STOP_REQUEST to
    mpirun): mpirun's status is returned then (solver/cli.py INCOMPLETE when they stopped).
    A second signal, SIGHUP, or ranks that do not end within GRACE_SECONDS stop mpirun and
    all its ranks, and then the status is 128 + the (first) signal's number, as a shell
    reports a process the signal ended."""
    process = subprocess.Popen(command, start_new_session=True,
                               preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    received: list[int] = []
    forwarded: list[int] = []  # the signal sent to mpirun's process group, if it came to that

    def forward(signum, frame):
        if not received and signum != signal.SIGHUP:
            logger.debug("signal %d: asking the ranks to stop at a step boundary", signum)
            _signal_mpirun(process, STOP_REQUEST)
        elif not forwarded:
            logger.debug("signal %d: stopping mpirun", signum)
            _signal(process, signum)
            forwarded.append(signum)
        received.append(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        grace = deadline = None
        while process.poll() is None:
            if received and grace is None:
                grace = time.monotonic() + GRACE_SECONDS
            if grace is not None and not forwarded and time.monotonic() > grace:
                _signal(process, received[0])
                forwarded.append(received[0])
            if forwarded and deadline is None:
                deadline = time.monotonic() + STOP_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                _signal(process, signal.SIGKILL)  # the ranks follow it (die_with_parent)
            time.sleep(0.1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if forwarded:
        return 128 + received[0]
    return process.returncode if process.returncode >= 0 else 128 - process.returncode


def _signal_mpirun(process: subprocess.Popen, signum: int):
    """`signum` to mpirun alone (it forwards STOP_REQUEST to the ranks once: sent to its
    process group, the ranks would have it twice)."""
    try:
        os.kill(process.pid, signum)
    except ProcessLookupError:
        pass


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
