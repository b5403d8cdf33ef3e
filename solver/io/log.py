"""Logging on rank 0 only, and a progress bar over simulated time that is quiet off a TTY."""

import logging
import sys

from mpi4py import MPI

from solver.errors import OutputError, write_reason


class RankZeroFilter(logging.Filter):
    """Lets records through on rank 0 of COMM_WORLD only, so N ranks do not print N times."""

    def filter(self, record):
        return MPI.COMM_WORLD.rank == 0


# The loggers of the project's packages: the solver's and the mesh builders'. Each gets its
# own handlers (a shared handlers list is not kept shared: Python 3.14's removeHandler
# replaces the list, so a run.log detached from one stayed attached to the other).
PACKAGES = ("solver", "meshes")


def setup_logging(verbosity: int = 0, logfile=None):
    """verbosity: -1 quiet (warnings only), 0 normal, 1 verbose (debug)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(logging.Formatter("%(message)s"))
    console.addFilter(RankZeroFilter())
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.handlers = [console]
    if logfile is not None:
        attach_logfile(logfile)
    return logging.getLogger("solver")


def attach_logfile(path):
    handler = _LogFile(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.addFilter(RankZeroFilter())
    for name in PACKAGES:
        logging.getLogger(name).addHandler(handler)
    return handler


def _remove(handler):
    for name in PACKAGES:
        logging.getLogger(name).removeHandler(handler)


def detach_logfile(handler, failed: bool = False):
    """Stop logging into the file and close it; a failure to write its end is an
    OutputError, unless the run `failed` already (its own error is the one to tell)."""
    _remove(handler)
    try:
        handler.close()
    except OSError as error:
        if not failed:
            raise OutputError(handler.baseFilename, write_reason(error)) from error


class _LogFile(logging.FileHandler):
    """A results directory's run.log. A record it cannot write (a full disk) ends the run
    with an OutputError naming the file, where logging would print a traceback and go on
    without it."""

    def handleError(self, record):
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            return super().handleError(record)
        _remove(self)
        raise OutputError(self.baseFilename, write_reason(error)) from error


class TimeProgress:
    """A progress bar over simulated time on rank 0, shown only when stderr is a terminal."""

    def __init__(self, total_time: float, enabled: bool = True):
        self.total = max(total_time, 1e-300)
        self._progress = None
        if enabled and MPI.COMM_WORLD.rank == 0 and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.percentage:>5.1f}% of the schedule"), TimeElapsedColumn(),
                transient=True,
            )

    def __enter__(self):
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("solving", total=self.total)
        return self

    def update(self, time: float, description: str):
        if self._progress is not None:
            self._progress.update(self._task, completed=time, description=description)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
