"""A full disk, a read-only one, an --out that cannot be: a clear error before solving
where it can be known, and otherwise one line naming the file, a non-zero exit, and no
result that looks complete (no summary.json, no temporary directory left), an earlier
result kept. On a real small tmpfs (tests/small_disk.py)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import small_disk
from test_sweep import TINY_BILAYER

from conftest import REPO

# a 200 um bilayer, 5 output times of its fields (about 270 kB in fields.h5)
SMALL_BILAYER = TINY_BILAYER.replace('"60 um"', '"200 um"') + "[output]\nevery = 1\n"
ERROR = "sinter: error: "
DISK_FULL = "no space left on device (the disk is full)"

MISSING = small_disk.missing()
on_a_small_disk = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


@pytest.fixture
def case(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_BILAYER)
    return path


def one_error(run: dict) -> str:
    """The run's one error line (no traceback): what follows 'sinter: error: '."""
    errors = [line for line in run["stderr"] if line.startswith(ERROR)]
    assert len(errors) == 1, run["stderr"]
    assert not any("Traceback" in line or "HDF5-DIAG" in line for line in run["stderr"])
    return errors[0].removeprefix(ERROR)


@on_a_small_disk
@pytest.mark.parametrize("ranks", [1, 2])
def test_too_little_space_is_refused_before_solving_then_a_full_disk_leaves_nothing(
        tmp_path, case, ranks):
    disk = tmp_path / "disk"
    report = small_disk.scenario("refused_then_filled", disk, "1m", case=str(case),
                                 ranks=ranks)
    tables, fields, writing = report["tables"], report["fields"], report["writing"]
    assert tables["status"] == 2 and not tables["left"]
    assert one_error(tables).startswith(f"{disk}: 32.8 kB free, a result (its tables and "
                                        "logs alone) needs at least 65.5 kB")
    # refused once the mesh is known, before the first step
    assert fields["status"] == 2 and not fields["left"]
    assert re.match(rf"{disk}: 1[56]\d kB free, the process stage's fields \(5 output times "
                    r"in xdmf\) need at least \d+ kB: free some space", one_error(fields))
    # the estimate is the values alone: room for it, with a warning, and the run fails
    # writing the fields' file
    assert writing["status"] == 1, writing
    assert any(line.startswith("warning: ") and "the disk may fill" in line
               for line in writing["stderr"])
    # on 2 ranks, one rank may meet the full disk first, and end the run
    error = re.sub(r"^on rank \d alone: ", "", one_error(writing))
    assert error == (f"{disk}/out/fields.h5: {DISK_FULL}: the run stopped; nothing was "
                     f"written to {disk}/out")
    assert writing["left"] == []


@on_a_small_disk
def test_a_full_disk_keeps_the_earlier_result(tmp_path, case):
    case.write_text(SMALL_BILAYER.replace("every = 1", "fields = []"))
    disk = tmp_path / "disk"
    report = small_disk.scenario("earlier_result", disk, "1m", case=str(case))
    assert report["first"]["status"] == 0, report["first"]
    second = report["second"]
    assert second["status"] == 1
    error = one_error(second)
    assert error.startswith(f"{disk}/out/") and DISK_FULL in error
    assert error.endswith(f"the run stopped; the earlier result at {disk}/out is kept")
    assert report["kept"] and second["left"] == report["first"]["left"]


@on_a_small_disk
def test_a_checkpoint_that_does_not_fit_keeps_the_one_before(tmp_path, case):
    case.write_text(SMALL_BILAYER.replace("every = 1", "fields = []"))
    disk = tmp_path / "disk"
    run = small_disk.scenario("checkpoint", disk, "1m", case=str(case))
    assert run["status"] == 1
    assert one_error(run) == (f"{disk}/.out.checkpoint.npz: {DISK_FULL}: the run stopped; "
                              f"nothing was written to {disk}/out")
    assert run["left"] == [".out.checkpoint.npz"]  # the first, for --restart


@on_a_small_disk
@pytest.mark.parametrize("ranks", [1, 2])
def test_a_read_only_disk_is_refused(tmp_path, case, ranks):
    disk = tmp_path / "disk"
    run = small_disk.scenario("read_only", disk, "1m", case=str(case), ranks=ranks)
    assert run["status"] == 2 and not run["left"]
    assert one_error(run) == (f"{disk}: read-only file system: the results cannot be "
                              f"written there; choose another --out")


def test_an_out_that_is_a_file_is_refused(tmp_path, case):
    (tmp_path / "out").write_text("not a directory")
    done = subprocess.run([sys.executable, "-m", "solver.cli", "run", str(case), "--out",
                           str(tmp_path / "out"), "-q"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"{ERROR}{tmp_path}/out: is a file, not a results "
                                   f"directory; choose another --out")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv (util-linux) to run as another user")
def test_a_parent_that_is_not_writable_is_refused():
    """As the user nobody, in a directory of root's that only root may write."""
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        directory.chmod(0o755)
        (directory / "small.toml").write_text(SMALL_BILAYER)
        (directory / "small.toml").chmod(0o644)
        for out, problem in ((directory / "out", f"{directory}: not writable"),
                             (directory / "sub" / "out", f"{directory}/sub: Permission denied")):
            done = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                                   "--clear-groups", "env", "HOME=/tmp", sys.executable, "-m",
                                   "solver.cli", "run", str(directory / "small.toml"),
                                   "--out", str(out), "-q"], capture_output=True, text=True,
                                  cwd=REPO)
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip() == (f"{ERROR}{problem}: the results cannot be written "
                                           f"there; choose another --out")
    finally:
        shutil.rmtree(directory)


@on_a_small_disk
def test_mesh_on_a_full_disk_leaves_no_file(tmp_path, case):
    disk = tmp_path / "disk"
    run = small_disk.scenario("mesh", disk, "1m", case=str(case))
    assert run["status"] == 1
    assert one_error(run) == f"{disk}/mesh/mesh.h5: {DISK_FULL}"
    assert run["left"] == ["mesh"]


@on_a_small_disk
def test_sweep_on_a_full_disk(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY_BILAYER)
    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text('[sweep]\nbase = "tiny.toml"\n[parameters]\n'
                          '"geometry.layers[1].thickness" = ["4 um", "8 um"]\n')
    disk = tmp_path / "disk"
    report = small_disk.scenario("sweep", disk, "1m", sweep_file=str(sweep_file))
    # each case fails with the disk's one line (a sweep goes on past a failed case)
    sweep = report["sweep"]
    assert sweep["status"] == 0 and len(sweep["stderr"]) == 2, sweep
    for line in sweep["stderr"]:
        assert re.fullmatch(rf"tiny-\w+ failed: {disk}/sweep/runs/tiny-\w+/[\w.]+: "
                            rf"{re.escape(DISK_FULL)}: the run stopped; nothing was written "
                            rf"to {disk}/sweep/runs/tiny-\w+", line), line
    # no case's result looks complete, nothing half-written is left
    assert not [name for name in sweep["left"] if name.startswith("sweep/runs/")
                or ".partial" in name], sweep["left"]
    # the table on a full disk: one line, and the earlier table as it was
    collect = report["collect"]
    assert collect["status"] == 1 and report["table_kept"]
    assert one_error(collect) == (f"{disk}/sweep/results.csv: {DISK_FULL}: the sweep's "
                                  "table is left as it was")
    assert not [name for name in collect["left"] if ".partial" in name]


# --- The writers on /dev/full (every write there fails with ENOSPC) -----------------------

FULL = "/dev/full"


def test_the_writers_name_their_file_when_the_disk_is_full():
    from solver.errors import OutputError
    from solver.io import output

    for write in (lambda: output.write_text(FULL, "text"),
                  lambda: output.write_summary(FULL, {"case": "x"}),
                  lambda: output.write_table(FULL, ["time"], [[1.0]])):
        with pytest.raises(OutputError) as failed:
            write()
        assert str(failed.value) == f"{FULL}: {DISK_FULL}" and failed.value.status == 1


def test_a_log_record_that_cannot_be_written_ends_the_run():
    import logging

    from solver.errors import OutputError
    from solver.io import log

    handler = log.attach_logfile(FULL)
    try:
        with pytest.raises(OutputError) as failed:
            logging.getLogger("solver.test").warning("a record for a full disk")
        assert str(failed.value) == f"{FULL}: {DISK_FULL}"
        assert handler not in logging.getLogger("solver").handlers
        assert handler not in logging.getLogger("meshes").handlers
    finally:
        log.detach_logfile(handler, failed=True)


def test_a_detached_run_log_gets_no_more_records(tmp_path):
    """After a run, its run.log is neither the solver's nor the mesh builders' handler (a
    handler left on one of them reopened the log of a removed results directory on the
    next run's first record, and ended that run with a full-disk error)."""
    import logging

    from solver.io import log

    log.setup_logging(0)
    handler = log.attach_logfile(tmp_path / "run.log")
    for name in ("solver", "meshes"):
        assert handler in logging.getLogger(name).handlers
    log.detach_logfile(handler)
    (tmp_path / "run.log").unlink()
    for name in ("solver.test", "meshes.test"):
        logging.getLogger(name).info("after the run")
    assert not (tmp_path / "run.log").exists()
