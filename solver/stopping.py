"""A run that stops before its end: why, where, and the incomplete result it leaves.

Two things end a stage early, both on every rank at the same step:

- a solve that step cuts cannot cure (solver/numerics/stepping.py advance_with_cuts or
  advance_adaptively gives up): Newton's residual norm and the Krylov solver's
  convergence are the same on every rank, so every rank raises the SolverError at the
  same step;
- SIGINT, SIGTERM or SIGUSR1. The handler (`on_signals`) only records the signal; the stages ask
  `requested(comm)` at each step boundary, one allreduce of the signal's number over the
  ranks, so every rank stops after the same step however the signal reached them (to one
  rank, to all, or not yet to some). A second signal to a rank ends it at once, as before.

The stage then writes what it has (its files so far, the last converged state, a
checkpoint to resume from) and raises RunStopped; solver/stages/pipeline.py writes
`incomplete.json` (INCOMPLETE_FILE, `incomplete_record`) and the results directory moves
into place without summary.json: a result is complete exactly when it has summary.json.
"""

import contextlib
import signal

INCOMPLETE_FILE = "incomplete.json"
# SIGUSR1: what `sinter run --np N` sends mpirun for a SIGINT or SIGTERM (solver/launch.py),
# which mpirun forwards to every rank; also what batch systems send ahead of a time limit
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

_received: list[int] = []  # the signals this process received while `on_signals` held
_depth: list[int] = []  # the `on_signals` held now, one entry each (they nest)


class RunStopped(Exception):
    """A stage that ended before its end, on every rank at the same step.

    reason: a sentence (the signal, or the solver's message); stage: "process",
    "swelling", "pulloff"; step: the last converged step of the stage (0: none after the
    start); load: the load there ({"time": s, "temperature": K}, {"soc": ...},
    {"displacement": m}); resumable: a checkpoint was written that `--resume` continues
    (a diverged solve would diverge again: it is not)."""

    def __init__(self, reason: str, stage: str, step: int, load: dict, resumable: bool):
        super().__init__(reason)
        self.reason, self.stage, self.step, self.load = reason, stage, step, load
        self.resumable = resumable

    def load_text(self) -> str:
        """The load in words, e.g. "t = 3600 s, T = 400.0 degC"."""
        parts = []
        for key, value in self.load.items():
            if key == "temperature":
                parts.append(f"T = {value - 273.15:.1f} degC")
            elif key == "time":
                parts.append(f"t = {value:.6g} s")
            elif key == "displacement":
                parts.append(f"d = {value * 1e6:.6g} um")
            else:
                parts.append(f"{key.upper() if key == 'soc' else key} = {value:.6g}")
        return ", ".join(parts)


def incomplete_record(stopped: RunStopped, resume_command: list[str] | None) -> dict:
    """The content of incomplete.json."""
    return {"complete": False, "reason": stopped.reason, "stage": stopped.stage,
            "step": stopped.step, "load": stopped.load,
            "resume": resume_command if stopped.resumable else None}


def signal_reason(signum: int) -> str:
    name = signal.Signals(signum).name
    return f"interrupted by {name}" + (" (a stop request)" if signum == signal.SIGUSR1 else "")


@contextlib.contextmanager
def on_signals():
    """While held, SIGINT, SIGTERM and SIGUSR1 are recorded for `requested` instead of
    ending the process; a second SIGINT or SIGTERM ends it as it would have
    (KeyboardInterrupt, or the exit status 128 + the signal). Only in the main thread
    (where Python runs handlers); elsewhere (a sweep's worker thread) nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if not _depth:  # the outermost: a new command (a sweep's worker runs many)
        _received.clear()
    _depth.append(1)

    def record(signum, frame):
        if _received and signum != signal.SIGUSR1:
            signal.signal(signum, signal.SIG_DFL)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        _received.append(signum)

    previous = {signum: signal.signal(signum, record) for signum in STOPPING_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _depth.pop()


def requested(comm) -> int:
    """The signal that asks the run to stop (0: none), the same on every rank: collective,
    called at step boundaries only."""
    local = _received[0] if _received else 0
    if comm.size == 1:
        return local
    from mpi4py import MPI  # here: a sweep imports this module before MPI may start

    return comm.allreduce(local, op=MPI.MAX)


def incomplete_message(run_dir, path) -> str:
    """What a reader of results says of the incomplete result whose incomplete.json is at
    `path`: the stop's reason and place, and how to resume."""
    import json

    try:
        record = json.loads(path.read_text())
        where = (f"{record['reason']}, {record['stage']} stage at step {record['step']}")
        resume = record.get("resume")
    except (OSError, ValueError, KeyError, TypeError):
        where, resume = "see its incomplete.json", None
    return (f"{run_dir}: an incomplete result ({where}); "
            + (f"resume it with: {' '.join(resume)}" if resume else
               "it cannot be resumed: run the case again (with other solver settings)"))
