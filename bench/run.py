"""`make bench`: time sinterfem's runs phase by phase, against bare DOLFINx and scikit-fem;
run on purpose, never in tests.

Every run is its own process (`mpirun -n N` for N ranks), so that its peak memory (summed
over its ranks) and its imports are its own; this process never initialises MPI. Per run:
name, dofs, ranks, mesh_s, assemble_s, setup_s, solve_s, iterations (Krylov, all solves),
total_s (end to end, the whole `sinter run`), peak_mem_mb (bench/instrument.py says how
each is measured). The runs:

- cooldown-3d-*: the 3D recurved cool-down (cases/recurved-3d.toml, mesh sizes scaled) at
  about 0.25M and 1M P2 DOFs, on 1 and 2 ranks;
- bare-dolfinx-*: the same problem on the same mesh in bare DOLFINx (bench/bare_dolfinx.py);
- schedule-3d: the whole sintering schedule (cases/sinter-schedule-2d.toml's schedule,
  materials and solver settings) on the 3D recurved cell, with the shares of assembly,
  setup and solve;
- pulloff-2d, pulloff-3d (cases/pulloff-recurved-{2,3}d.toml, skipped with a message where
  the 3D case is not there), the shipped swelling cases;
- sweep-2d-100: a 100-case sweep of the recurved cell (neck width x height), wall time,
  per-case time, disk;
- p1-3d, p1-3d-meshfile and skfem-p1-3d: the cool-down with P1 elements at about 1M DOFs,
  one process each: sinterfem meshing with Gmsh, sinterfem reading that mesh from a file
  (kind = "mesh", p1.msh of bench/child.py --mesh-out) and scikit-fem + pyamg reading the
  same file (bench/skfem_elastic.py, installed on demand into bench/.venv), displacements
  compared;
- the particle packings (the parameter sets of tests/test_particles.py) against their 5 s.

comparisons: bare_dolfinx_ratio (sinterfem end to end / bare, same mesh, same ranks, per
mesh and rank count), skfem_ratio (scikit-fem / sinterfem, both reading the same mesh
file; skfem_ratio_cpu the same in CPU seconds) and skfem_ratio_sinterfem_meshing
(scikit-fem reading the file / sinterfem meshing with Gmsh), the schedule's shares.

    bin/sinter-env python3 bench/run.py [--out bench/results.json] [--only NAME] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CASES = REPO / "cases"
sys.path.insert(0, str(REPO))

from solver.sweep.plan import toml_dumps  # noqa: E402  (no MPI: plain TOML)

RUN_TIMEOUT = 3600  # s, for one run
COLUMNS = ("name", "dofs", "ranks", "mesh_s", "assemble_s", "setup_s", "solve_s",
           "iterations", "total_s", "peak_mem_mb")

# mesh-size factors of cases/recurved-3d.toml: P2 DOFs grow as about factor^-2.14 from
# 142k at 1 (measured), so 0.77 gives about 0.25M and 0.40 about 1M; P1 DOFs are about
# 7.5 times fewer at the same mesh, so 0.157 gives about 1M
FULL = {"cooldown": {"250k": 0.77, "1M": 0.40}, "schedule": 0.77, "p1": 0.157,
        "coarsen_2d": 1.0, "sweep_cases": (10, 10)}
QUICK = {"cooldown": {"20k": 2.6, "40k": 1.9}, "schedule": 3.0, "p1": 1.0,
         "coarsen_2d": 2.0, "sweep_cases": (2, 2)}


# --- Case files ---------------------------------------------------------------------------


def _scaled(quantity: str, factor: float) -> str:
    value, unit = quantity.split(maxsplit=1)
    return f"{float(value) * factor:.6g} {unit}"


def case_file(scratch: Path, name: str, source: str, mesh_factor: float = 1.0,
              changes: dict | None = None) -> Path:
    """cases/SOURCE with every [geometry] mesh size times mesh_factor and `changes` (table
    by table) applied, as scratch/NAME.toml."""
    document = tomllib.loads((CASES / source).read_text())
    for table, values in (changes or {}).items():
        if values is None:
            document.pop(table, None)
        else:
            document.setdefault(table, {}).update(values)
    geometry = document["geometry"]
    for key in [k for k in geometry if k.endswith("mesh_size")]:
        geometry[key] = _scaled(geometry[key], mesh_factor)
    document["case"]["name"] = name
    path = scratch / f"{name}.toml"
    path.write_text(toml_dumps(document))
    return path


def schedule_3d_changes() -> dict:
    """sinter-schedule-2d's schedule, materials and solver on recurved-3d's geometry."""
    schedule = tomllib.loads((CASES / "sinter-schedule-2d.toml").read_text())
    case = {key: value for key, value in schedule["case"].items() if key != "plane"}
    return {"case": {**case, "dim": 3}, "materials": schedule["materials"],
            "schedule": schedule["schedule"], "solver": schedule["solver"],
            "interface": schedule["interface"]}


# --- Running a child ----------------------------------------------------------------------


def _mpi_prefix(ranks: int) -> list[str]:
    if ranks == 1:
        return []
    mpirun = shutil.which("mpirun") or shutil.which("mpiexec")
    if mpirun is None:
        raise SystemExit("bench: mpirun is needed for runs on several ranks")
    return [mpirun, "-n", str(ranks)]


def run_child(name: str, command: list[str], ranks: int, scratch: Path,
              python: str = sys.executable) -> dict:
    """Run `python COMMAND --record FILE` on `ranks` ranks; its record, or the error."""
    record_file = scratch / f"{name}.record.json"
    record_file.unlink(missing_ok=True)
    print(f"bench: {name} on {ranks} rank(s) ...", flush=True)
    started = time.perf_counter()
    # its own session: a run past its time is ended with all its ranks
    process = subprocess.Popen([*_mpi_prefix(ranks), python, *command, "--record",
                                str(record_file)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO,
                               start_new_session=True)
    try:
        _, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        stderr += f"\nbench: ended after {RUN_TIMEOUT} s"
    wall = time.perf_counter() - started
    if process.returncode != 0 or not record_file.exists():
        lines = [line for line in stderr.splitlines() if line.strip()]
        error = lines[-1] if lines else f"exit status {process.returncode}"
        print(f"bench: {name} FAILED: {error}", flush=True)
        (scratch / f"{name}.stderr").write_text(stderr)
        return {"name": name, "ranks": ranks, "error": error, "process_s": wall}
    return {"name": name, **json.loads(record_file.read_text()), "process_s": wall}


def case_run(name: str, case: Path, ranks: int, scratch: Path, command: str = "run",
             mesh_out: Path | None = None) -> dict:
    arguments = [str(BENCH / "child.py"), command, str(case)]
    if mesh_out is not None:
        arguments += ["--mesh-out", str(mesh_out)]
    return run_child(name, arguments, ranks, scratch)


# --- The runs -----------------------------------------------------------------------------


def cooldown_runs(sizes: dict, scratch: Path, selected) -> list[dict]:
    """The 3D cool-down at each size on 1 and 2 ranks, and bare DOLFINx on the same meshes."""
    records = []
    for size, factor in sizes.items():
        case = case_file(scratch, f"cooldown-3d-{size}", "recurved-3d.toml", factor)
        mesh_dir = scratch / f"mesh-{size}"
        for ranks in (1, 2):
            name = f"cooldown-3d-{size}-{ranks}r"
            if selected(name):
                records.append(case_run(name, case, ranks, scratch,
                                        mesh_out=mesh_dir if ranks == 1 else None))
        for ranks in (1, 2):
            name = f"bare-dolfinx-{size}-{ranks}r"
            if not selected(name):
                continue
            if not (mesh_dir / "mesh.xdmf").exists():
                records.append(case_run(f"cooldown-3d-{size}-mesh", case, 1, scratch,
                                        mesh_out=mesh_dir))
            records.append(run_child(name, [str(BENCH / "bare_dolfinx.py"), str(mesh_dir)],
                                     ranks, scratch))
    return records


def sweep_run(name: str, counts: tuple[int, int], scratch: Path) -> dict:
    """A sweep of the recurved cell, neck width x height, on 2 warm workers; its wall time,
    per-case time and disk (the default outputs of every case)."""
    (scratch / "recurved-2d.toml").write_text((CASES / "recurved-2d.toml").read_text())
    necks, heights = counts
    sweep_file = scratch / f"{name}.toml"
    sweep_file.write_text(toml_dumps({
        "sweep": {"base": "recurved-2d.toml", "method": "grid"},
        "parameters": {
            "geometry.neck_width": {"from": "0.9 um", "to": "2.1 um", "count": necks},
            "geometry.height": {"from": "2.0 um", "to": "4.0 um", "count": heights}}}))
    out = scratch / name
    print(f"bench: {name}: {necks * heights} cases on 2 workers ...", flush=True)
    started = time.perf_counter()
    log = scratch / f"{name}.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "solver.cli", "sweep",
                                    str(sweep_file), "--out", str(out), "--jobs", "2", "-q",
                                    "--no-progress"], cwd=REPO, stdout=output,
                                   stderr=subprocess.STDOUT)
        # wait4: the largest resident memory of the sweep process or any one of its workers
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    returncode = os.waitstatus_to_exitcode(status)
    process.returncode = returncode
    peak = usage.ru_maxrss / 1024.0
    lines = log.read_text().strip().splitlines() or [f"exit status {returncode}"]
    statuses = [json.loads(path.read_text()) for path in (out / "status").glob("*.json")]
    ok = [s for s in statuses if s["status"] == "ok"]
    disk = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    runs = sum(path.stat().st_size for path in (out / "runs").rglob("*") if path.is_file())
    record = {"name": name, "ranks": 1, "workers": 2, "cases": len(statuses),
              "cases_ok": len(ok), "total_s": wall,
              "per_case_s": wall / max(len(statuses), 1),
              "mean_case_wall_s": sum(s["wall_time"] for s in ok) / max(len(ok), 1),
              "disk_mb": disk / 1e6, "disk_per_case_mb": runs / 1e6 / max(len(ok), 1),
              "peak_mem_mb": peak, "peak_mem_note": "the largest single process"}
    if returncode != 0:
        record["error"] = lines[-1]
    dofs = [json.loads((out / "runs" / s["name"] / "summary.json").read_text())["dofs"]
            for s in ok[:1]]
    if dofs:
        record["dofs"] = dofs[0]
    print(f"bench: {name}: {lines[-1]}", flush=True)
    return record


def skfem_python() -> str | None:
    """A venv's python with scikit-fem and pyamg, created and filled on demand
    (bench/.venv-pyX.Y, with the toolchain's packages visible): from the wheels that
    `make bench` fetched into bench/.wheels on the host, else from the package index. None
    where that fails."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = BENCH / f".venv-py{version}"
    python = venv / "bin" / "python3"
    check = [str(python), "-c", "import skfem, pyamg"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    wheels = BENCH / ".wheels"
    source = (["--no-index", "--find-links", str(wheels)] if list(wheels.glob("pyamg-*"))
              else [])
    print(f"bench: installing scikit-fem and pyamg into {venv} ...", flush=True)
    steps = [[sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
             [str(python), "-m", "pip", "install", "-q", *source, "scikit-fem", "pyamg"]]
    for step in steps:
        process = subprocess.run(step, capture_output=True, text=True)
        if process.returncode != 0:
            print(f"bench: {' '.join(step)} failed: {process.stderr.strip()[-300:]}")
            return None
    return str(python)


def mesh_file_case(scratch: Path, name: str, case: Path, mesh_dir: Path) -> Path:
    """`case` with its geometry read from mesh_dir/p1.msh (kind = "mesh"): the materials by
    their tags (materials.json, the foil's first), the same element size."""
    document = tomllib.loads(case.read_text())
    materials = json.loads((mesh_dir / "materials.json").read_text())["materials"]
    document["geometry"] = {
        "kind": "mesh", "file": str(mesh_dir / "p1.msh"), "length_unit": "um",
        "materials": {entry["name"]: int(tag) for tag, entry in sorted(
            materials.items(), key=lambda item: int(item[0]))},
        "mesh_size": document["geometry"]["mesh_size"]}
    document["case"]["name"] = name
    path = scratch / f"{name}.toml"
    path.write_text(toml_dumps(document))
    return path


def p1_runs(factor: float, scratch: Path, selected) -> list[dict]:
    """The cool-down with P1 elements in sinterfem (meshing with Gmsh, and reading that
    mesh from a file) and in scikit-fem (reading the file), one process each."""
    records = []
    case = case_file(scratch, "p1-3d", "recurved-3d.toml", factor,
                     {"solver": {"degree": 1, "geometry_degree": 1,
                                 "temperature_increment": "375 K"}})
    mesh_dir = scratch / "mesh-p1"
    if selected("p1-3d") or selected("skfem-p1-3d"):
        records.append(case_run("p1-3d", case, 1, scratch, mesh_out=mesh_dir))
    if selected("p1-3d-meshfile") and (mesh_dir / "p1.msh").exists():
        records.append(case_run("p1-3d-meshfile", mesh_file_case(
            scratch, "p1-3d-meshfile", case, mesh_dir), 1, scratch))
    if selected("skfem-p1-3d"):
        python = skfem_python()
        if python is None:
            records.append({"name": "skfem-p1-3d", "ranks": 1,
                            "error": "scikit-fem and pyamg could not be installed"})
        else:
            records.append(run_child("skfem-p1-3d", [str(BENCH / "skfem_elastic.py"),
                                                     str(mesh_dir)], 1, scratch, python))
    return records


def packing_records() -> list[dict]:
    """Each packing of the tests, and each impossible one's giving up, in one process."""
    process = subprocess.run([sys.executable, str(BENCH / "packings.py")], capture_output=True,
                             text=True, cwd=REPO)
    if process.returncode != 0:
        return [{"name": "packings", "error": process.stderr.strip().splitlines()[-1]}]
    return json.loads(process.stdout)


def comparisons(records: list[dict]) -> dict:
    by_name = {r["name"]: r for r in records if "error" not in r}
    result = {"bare_dolfinx_ratio": {}, "bare_dolfinx_ratio_without_mesh": {}}
    for name, record in by_name.items():
        match = re.fullmatch(r"cooldown-3d-(\w+)-(\d)r", name)
        bare = by_name.get(f"bare-dolfinx-{match[1]}-{match[2]}r") if match else None
        if bare is None:
            continue
        result["bare_dolfinx_ratio"][name] = record["total_s"] / bare["total_s"]
        # Gmsh against reading the mesh file: the rest is the like-for-like part
        result["bare_dolfinx_ratio_without_mesh"][name] = (
            (record["total_s"] - record["mesh_s"]) / (bare["total_s"] - bare["mesh_s"]))
        result.setdefault("face_displacement_relative_difference", {})[name] = abs(
            record["summary"]["final"]["face_displacement"] / bare["face_displacement"] - 1)
    skfem = by_name.get("skfem-p1-3d")
    if skfem is not None and "p1-3d-meshfile" in by_name:
        ours = by_name["p1-3d-meshfile"]
        result["skfem_ratio"] = skfem["total_s"] / ours["total_s"]
        result["skfem_ratio_note"] = (
            "scikit-fem (reading p1.msh, assembly, pyamg setup and CG solves) / sinterfem "
            "end to end reading the same p1.msh (kind = mesh), P1, one process each")
        if "cpu_s" in skfem and "cpu_s" in ours:
            # CPU seconds: what the other jobs of a shared machine change less
            result["skfem_ratio_cpu"] = skfem["cpu_s"]["total"] / ours["cpu_s"]["total"]
    if skfem is not None and "p1-3d" in by_name:
        ours = by_name["p1-3d"]
        result["skfem_ratio_sinterfem_meshing"] = skfem["total_s"] / ours["total_s"]
        result["skfem_ratio_sinterfem_meshing_note"] = (
            "scikit-fem reading p1.msh / sinterfem end to end building that mesh with Gmsh")
        result["skfem_displacement_max_relative_difference"] = skfem.get(
            "displacement_max_relative_difference")
    if "p1-3d" in by_name and "p1-3d-meshfile" in by_name:
        result["meshfile_face_displacement_relative_difference"] = abs(
            by_name["p1-3d-meshfile"]["summary"]["final"]["face_displacement"]
            / by_name["p1-3d"]["summary"]["final"]["face_displacement"] - 1)
    if "schedule-3d" in by_name:
        schedule = by_name["schedule-3d"]
        result["schedule_3d_shares"] = {
            phase: schedule[f"{phase}_s"] / schedule["total_s"]
            for phase in ("mesh", "assemble", "setup", "solve")}
        result["schedule_3d_shares"]["rest"] = 1 - sum(result["schedule_3d_shares"].values())
    return result


def table(records: list[dict]) -> str:
    rows = [COLUMNS]
    for record in records:
        if "error" in record:
            rows.append((record["name"], f"FAILED: {record['error'][:90]}"))
            continue
        if "skipped" in record:
            rows.append((record["name"], f"skipped: {record['skipped']}"))
            continue
        rows.append(tuple(
            f"{record[key]:.2f}" if isinstance(record.get(key), float)
            else str(record.get(key, "-")) for key in COLUMNS))
    widths = [max(len(row[i]) for row in rows if len(row) == len(COLUMNS))
              for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(width) if i else cell.ljust(width)
                               for i, (cell, width) in enumerate(zip(row, widths,
                                                                     strict=False)))
                     for row in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=BENCH / "results.json")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="only the runs whose name contains NAME (repeatable)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and a 4-case sweep, for trying the harness")
    parser.add_argument("--shared-machine", action="store_true",
                        help="say in the results that other jobs ran beside the bench")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the case files, meshes and run logs in DIR")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL

    def selected(name: str) -> bool:
        return not args.only or any(part in name for part in args.only)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sinterfem-bench-") as temporary:
        scratch = args.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        records = cooldown_runs(sizes["cooldown"], scratch, selected)
        if selected("schedule-3d"):
            records.append(case_run("schedule-3d", case_file(
                scratch, "schedule-3d", "recurved-3d.toml", sizes["schedule"],
                schedule_3d_changes()), 2, scratch))
        coarsen = sizes["coarsen_2d"]
        if selected("pulloff-2d"):
            records.append(case_run("pulloff-2d", case_file(
                scratch, "pulloff-2d", "pulloff-recurved-2d.toml", coarsen), 1, scratch,
                command="pulloff"))
        if selected("pulloff-3d"):
            if (CASES / "pulloff-recurved-3d.toml").exists():
                records.append(case_run("pulloff-3d", case_file(
                    scratch, "pulloff-3d", "pulloff-recurved-3d.toml", coarsen), 2, scratch,
                    command="pulloff"))
            else:
                print("bench: pulloff-3d skipped: cases/pulloff-recurved-3d.toml is not there")
                records.append({"name": "pulloff-3d",
                                "skipped": "cases/pulloff-recurved-3d.toml is not there"})
        for source in ("swelling-diffusion-2d.toml", "swelling-particles-2d.toml"):
            name = source.removesuffix(".toml")
            if selected(name):
                records.append(case_run(name, case_file(scratch, name, source, coarsen), 1,
                                        scratch))
        necks, heights = sizes["sweep_cases"]
        name = f"sweep-2d-{necks * heights}"
        if selected(name):
            records.append(sweep_run(name, (necks, heights), scratch))
        records += p1_runs(sizes["p1"], scratch, selected)
        packings = packing_records() if selected("packings") else []
    result = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(), "cores": os.cpu_count(), "quick": args.quick,
        "machine": ("shared: other jobs ran beside the bench" if args.shared_machine
                    else "not said to be shared"),
        "wall_s": time.perf_counter() - started,
        "runs": records, "comparisons": comparisons(records), "packings": packings}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(records))
    for record in records:
        if "per_case_s" in record and "error" not in record:
            print(f"{record['name']}: {record['cases']} cases ({record['cases_ok']} ok) on "
                  f"{record['workers']} warm workers: {record['total_s']:.1f} s, "
                  f"{record['per_case_s']:.2f} s per case; {record['disk_mb']:.0f} MB on disk "
                  f"({record['disk_per_case_mb']:.1f} MB per case)")
    print(json.dumps(result["comparisons"], indent=2))
    for record in packings:
        if "error" in record:
            print(f"packings FAILED: {record['error']}")
        else:
            verdict = "ok" if record["within_limit"] else "OVER the limit"
            print(f"{record['case']}: {record['wall_time']:.2f} s ({verdict}: "
                  f"{record['limit']:g} s)")
    print(f"bench: {args.out}")


if __name__ == "__main__":
    main()
