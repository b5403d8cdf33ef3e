"""A small, real disk for the full-disk tests (tests/test_diskfull.py).

Each scenario runs in a mount namespace of its own (`unshare --mount`, with
`--map-root-user` where the tests do not run as root), where a tmpfs of a few hundred
kilobytes is mounted over a directory of the test's: `sinter` writes into it as into any
disk and meets a real ENOSPC or EROFS, and the mount ends with the namespace. The free
space is set before each run by a filler file (deterministic: tmpfs counts whole pages).

`python3 tests/small_disk.py SCENARIO DISK SIZE ARGS` is the part inside the namespace: it
mounts the tmpfs, runs the scenario and prints its report as JSON on the last line.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 300.0  # s, one sinter command


def _unshare() -> list[str]:
    return (["unshare", "--mount", "--propagation", "private"]
            + ([] if os.geteuid() == 0 else ["--map-root-user"]))


def missing() -> str | None:
    """Why a tmpfs cannot be mounted here (the reason to skip), or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare and mount (util-linux) are not on the PATH"
    probe = subprocess.run([*_unshare(), "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                            "/tmp"], capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"cannot mount a tmpfs in a mount namespace of its own "
                f"({' '.join(_unshare())}: {probe.stderr.strip()})")
    return None


def scenario(name: str, disk: Path, size: str, **arguments) -> dict:
    """Run the scenario `name` (a function of this module) with a tmpfs of `size` at
    `disk`; its report."""
    disk.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([*_unshare(), sys.executable, __file__, name, str(disk), size,
                           json.dumps(arguments)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=8 * TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.splitlines()[-1])


# --- Inside the namespace -----------------------------------------------------------------


def sinter(disk: Path, *args, ranks: int = 1) -> dict:
    """`sinter ARGS` (on `ranks` ranks): its exit status, its stderr's lines (Open MPI's
    own notices left out) and what is left on the disk (the filler aside)."""
    command = [sys.executable, "-m", "solver.cli", *map(str, args)]
    if ranks > 1:
        command = ["mpirun", "-n", str(ranks), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO)
    return {"status": done.returncode, "stderr": _own_lines(done.stderr), "left": left(disk)}


def _own_lines(stderr: str) -> list[str]:
    """The lines sinter printed: not Open MPI's boxes around an abort or a failed rank, nor
    its I/O layer's notices of a write that failed (mca_fbtl_posix_pwritev)."""
    lines, boxed = [], False
    for line in stderr.splitlines():
        if line.startswith("-" * 20):
            boxed = not boxed
        elif not boxed and line.strip() and not line.startswith("mca_fbtl_"):
            lines.append(line)
    return lines


def left(disk: Path) -> list[str]:
    return sorted(str(path.relative_to(disk)) for path in disk.rglob("*")
                  if path.name != "filler")


def leave_free(disk: Path, size: int):
    """Grow or shrink the filler file until `size` bytes are free (to a page)."""
    filler = disk / "filler"
    filler.touch()
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    os.truncate(filler, max(0, filler.stat().st_size + free - size))
    with open(filler, "r+b") as stream:  # tmpfs counts a page once it is written
        stream.seek(0)
        length = filler.stat().st_size
        while stream.tell() < length:
            stream.write(b"\0" * min(1 << 20, length - stream.tell()))


def needed_bytes(line: str) -> int:
    """The bytes a refusal says the fields need ("need at least 256 kB")."""
    number, unit = re.search(r"need at least ([0-9.]+) (bytes|kB|MB)", line).groups()
    return int(float(number) * {"bytes": 1, "kB": 1e3, "MB": 1e6}[unit])


def refused_then_filled(disk: Path, case: str, ranks: int) -> dict:
    """Too little space for the tables, then for the fields (refused before solving); then
    enough by the estimate, not for the fields as written (the run fails writing them)."""
    out = disk / "out"
    report = {}
    leave_free(disk, 32 * 1024)
    report["tables"] = sinter(disk, "run", case, "--out", out, "-q", ranks=ranks)
    leave_free(disk, 160 * 1024)
    report["fields"] = sinter(disk, "run", case, "--out", out, "-q", ranks=ranks)
    # room for the estimate when the run checks it (after run.log and its directory), not
    # for the files' own structure on top
    leave_free(disk, needed_bytes(report["fields"]["stderr"][-1]) + 16 * 1024)
    report["writing"] = sinter(disk, "run", case, "--out", out, "-q", ranks=ranks)
    return report


def earlier_result(disk: Path, case: str) -> dict:
    """A complete result, then a second run at it with the disk nearly full."""
    out = disk / "out"
    first = sinter(disk, "run", case, "--out", out, "-q")
    summary = (out / "summary.json").read_text() if (out / "summary.json").exists() else ""
    leave_free(disk, 80 * 1024)
    second = sinter(disk, "run", case, "--out", out, "-q")
    kept = (out / "summary.json").read_text() if (out / "summary.json").exists() else None
    return {"first": first, "second": second, "kept": kept == summary and bool(summary)}


def checkpoint(disk: Path, case: str) -> dict:
    """Checkpoints every step, with room for one: the second fails."""
    leave_free(disk, 80 * 1024)
    return sinter(disk, "run", case, "--out", disk / "out", "-q", "--checkpoint-every", "1")


def read_only(disk: Path, case: str, ranks: int) -> dict:
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    return sinter(disk, "run", case, "--out", disk / "out", "-q", ranks=ranks)


def mesh(disk: Path, case: str) -> dict:
    leave_free(disk, 40 * 1024)
    return sinter(disk, "mesh", case, "--out", disk / "mesh")


def sweep(disk: Path, sweep_file: str) -> dict:
    """A sweep whose cases find the disk full; then its table collected on a full disk."""
    out = disk / "sweep"
    leave_free(disk, 100 * 1024)
    report = {"sweep": sinter(disk, "sweep", sweep_file, "--out", out, "-q", "--jobs", "1")}
    table = (out / "results.csv").read_text() if (out / "results.csv").exists() else None
    leave_free(disk, 0)
    report["collect"] = sinter(disk, "sweep", "collect", out, "-q")
    report["table_kept"] = table is not None and (out / "results.csv").read_text() == table
    return report


if __name__ == "__main__":
    name, disk, size, arguments = sys.argv[1:]
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", disk], check=True)
    print(json.dumps(globals()[name](Path(disk), **json.loads(arguments))))
