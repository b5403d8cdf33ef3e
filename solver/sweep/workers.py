"""Warm workers for the local backend: long-lived processes that import DOLFINx and Gmsh
once and run many cases in-process, each on its own MPI.COMM_SELF.

A small 2D case solves in about a second, while a fresh `sinter run` first spends seconds
importing the toolchain and initialising MPI and the form cache; a worker pays that once.
Isolation stays that of a process per case where it matters: a case that raises is
recorded failed by its worker, which goes on with the next; a case that kills its worker
(a crash in native code, the kernel's OOM killer) is recorded failed by the pool, which
starts a new worker. A worker is replaced after CASES_PER_WORKER cases, so that whatever a
case leaves behind in the process (PETSc objects, compiled forms) cannot pile up over a
long sweep.

The workers are started with the "spawn" method: the sweep's own process never initialises
MPI (it may launch mpirun), and a fork would copy no toolchain anyway.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from solver.launch import GRACE_SECONDS
from solver.sweep.backends import finish_attempt, resumable, start_attempt
from solver.sweep.plan import SweepCase

logger = logging.getLogger(__name__)

CASES_PER_WORKER = 50


def run_in_process(out: Path, case: SweepCase) -> dict:
    """`sinter run` of one case inside this process on MPI.COMM_SELF; records the outcome
    like a fresh process would (status/NAME.json, status/NAME.stderr when it fails)."""
    from mpi4py import MPI

    from solver.case import load_case
    from solver.errors import UserError
    from solver.stages.pipeline import run_case
    from solver.stopping import RunStopped

    start_attempt(out, case)
    # what a fresh process would have printed on stderr: warnings, and the error's traceback
    stderr = io.StringIO()
    handler = logging.StreamHandler(stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    loggers = [logging.getLogger("solver"), logging.getLogger("meshes")]
    for each in loggers:
        each.addHandler(handler)
        each.setLevel(logging.DEBUG)  # run.log records everything, as under `sinter run`
    error = None
    started = time.perf_counter()
    try:
        run_case(load_case(Path(out) / "cases" / f"{case.name}.toml"),
                 Path(out) / "runs" / case.name, MPI.COMM_SELF, progress=False,
                 resume=resumable(out, case))
    except RunStopped as stopped:  # an incomplete result: finish_attempt says why
        error = f"stopped: {stopped.reason}"
    except UserError as exc:  # the one line `sinter run` prints
        error = str(exc)
        stderr.write(f"sinter: error: {error}\n")
    except Exception as exc:  # a bug: its type and first line, the traceback in the log
        stderr.write(traceback.format_exc())
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        for each in loggers:
            each.removeHandler(handler)
    return finish_attempt(out, case, 1, "local", time.perf_counter() - started, error,
                          stderr.getvalue())


def _serve(connection: Connection, out: str, run: Callable[[Path, SweepCase], dict]):
    """A worker: run the cases it is sent, one at a time, until it is sent None."""
    os.chdir(out)  # where a fresh `sinter run` of the sweep runs
    while (case := connection.recv()) is not None:
        connection.send(run(Path(out), case))


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    case: SweepCase | None = None
    done: int = 0


def run_warm(out: Path, todo: list[SweepCase], count: int,
             run: Callable[[Path, SweepCase], dict] = run_in_process) -> Iterator[dict]:
    """Run `todo` on `count` warm workers; yield each case's record as it finishes.

    run: what a worker does with a case (a module-level function: it is sent to the
    workers by name)."""
    out = Path(out).resolve()
    context = multiprocessing.get_context("spawn")
    queue = deque(todo)

    def start() -> _Worker:
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, str(out), run),
                                  name="sweep-worker")
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def stop(worker: _Worker):
        try:
            worker.connection.send(None)
        except OSError:
            pass  # already gone
        worker.process.join(timeout=30)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join()
        worker.connection.close()

    busy: list[_Worker] = []
    try:
        for _ in range(min(count, len(queue))):
            worker = start()
            worker.case = queue.popleft()
            worker.connection.send(worker.case)
            busy.append(worker)
        while busy:
            ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            for worker in [w for w in busy
                           if w.connection in ready or w.process.sentinel in ready]:
                busy.remove(worker)
                record = None
                try:
                    if worker.connection.poll():
                        record = worker.connection.recv()
                except (EOFError, OSError):
                    pass
                if record is None:  # the worker died inside the case
                    worker.process.join()
                    code = worker.process.exitcode
                    logger.warning("the worker running %s died (exit status %s): starting "
                                   "another", worker.case.name, code)
                    record = finish_attempt(out, worker.case, 1, "local", 0.0,
                                            f"the worker process died (exit status {code})",
                                            f"worker process {worker.process.pid} died with "
                                            f"exit status {code} while running this case\n")
                    worker.connection.close()
                    worker = start() if queue else None
                else:
                    worker.done += 1
                    if worker.done >= CASES_PER_WORKER or not queue:
                        stop(worker)
                        worker = start() if queue else None
                yield record
                if worker is not None:
                    worker.case = queue.popleft()
                    worker.connection.send(worker.case)
                    busy.append(worker)
    except KeyboardInterrupt:
        # a Ctrl-C reaches the workers too (the same process group): each stops its case at
        # the next step boundary and leaves an incomplete result, which a rerun resumes
        # (solver/stopping.py); they are waited for that long, then end
        for worker in busy:
            try:
                worker.connection.send(None)
            except OSError:
                pass
        for worker in busy:
            worker.process.join(timeout=GRACE_SECONDS)
        raise
    finally:
        for worker in busy:  # interrupted otherwise: no case is waited for
            if worker.process.is_alive():
                worker.process.terminate()
            worker.process.join()
            worker.connection.close()
