"""The command line end to end: check, run, --np 2, errors, and `make demo`."""

import json
import os
import shutil
import subprocess
import sys
import tomllib

import pytest
from test_parallel import assert_same_results, process_physics

from solver.cli import VERDICT_FAILED, main
from solver.io import units

from conftest import CASES, REPO

SMALL_BILAYER = """
[case]
name = "small-bilayer"
[geometry]
kind = "layers"
length = "80 um"
layers = [ { material = "copper", thickness = "8 um" },
           { material = "polyimide", thickness = "8 um" } ]
mesh_size = "4 um"
[schedule]
start = "400 degC"
steps = [ { to = "25 degC", rate = "5 K/min" } ]
"""

RECURVED_KEYS = """
[case]
name = "bad-recurved"
[geometry]
kind = "recurved"
pitch = "{pitch}"
foil_thickness = "10 um"
neck_width = "{neck}"
head_width = "{head}"
height = "3 um"
mix_thickness = "10 um"
mesh_size = "1 um"
[schedule]
start = "400 degC"
steps = [ {{ to = "25 degC", rate = "5 K/min" }} ]
"""


def sinter(*args, cwd=REPO):
    """Run the CLI as a user would, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "solver.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_check_accepts_every_shipped_case(capsys):
    for case in sorted(CASES.glob("*.toml")):
        if "sweep" in tomllib.loads(case.read_text()):
            continue  # a sweep file: tests/test_sweep.py expands it
        assert main(["check", str(case)]) == 0, case
    assert "ok" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_serial(tmp_path_factory):
    """SMALL_BILAYER run once by `sinter run` on one rank: (case file, results directory)."""
    base = tmp_path_factory.mktemp("small")
    case = base / "small.toml"
    case.write_text(SMALL_BILAYER)
    out = base / "results" / "small"
    result = sinter("run", case, "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    return case, out


def test_run_writes_complete_results(small_serial, tmp_path):
    case, out = small_serial
    # the default [output]: the fields of the final state in XDMF, no VTX
    assert {p.name for p in out.iterdir()} == {
        "fields.xdmf", "fields.h5", "interface.csv", "history.csv", "summary.json",
        "case.toml", "run.log", "state.npz", "kinetics.csv", "kinetics.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 1 and summary["dofs"] > 0
    assert summary["interfaces"]["interface_0_1"]["materials"] == ["copper", "polyimide"]
    assert summary["final"]["temperature"] == pytest.approx(298.15)
    # only the result itself is left next to it: no temporary directory
    assert [p.name for p in out.parent.iterdir()] == ["small"]
    # a second run replaces the earlier result
    again = tmp_path / "again"
    shutil.copytree(out, again)
    assert sinter("run", case, "--out", again, "--no-progress", "-q").returncode == 0
    assert [p.name for p in tmp_path.iterdir()] == ["again"]


def test_np_runs_on_two_ranks(small_serial, tmp_path):
    """`--np 2` gives the serial run's results: every summary number to 1e-6, the bending
    curvature, final state and interface tractions among them, the displacement field and
    the tractions along the interface (test_parallel.assert_same_results)."""
    case, serial = small_serial
    result = sinter("run", case, "--out", tmp_path / "np2", "--np", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    _, parallel = assert_same_results(serial, tmp_path / "np2", [
        "bending.curvature", *process_physics("interface_0_1", generalized=False, cell=False)])
    assert parallel["ranks"] == 2


def test_strict_exits_with_3_where_delamination_is_predicted(tmp_path, capsys):
    """An interface risk >= 1 fails the verdict: in the summary, the table, and with --strict
    the exit status (3; 2 is a user error). The copper's stress beyond its flow stress is a
    warning (terminal, summary), and run.log and summary.json say what made them."""
    weak, strong = tmp_path / "weak.toml", tmp_path / "strong.toml"
    weak.write_text(SMALL_BILAYER + '[interface]\nnormal_strength = "2 MPa"\n'
                    'shear_strength = "2 MPa"\n')
    strong.write_text(SMALL_BILAYER + '[interface]\nnormal_strength = "1 GPa"\n'
                      'shear_strength = "1 GPa"\n')
    assert main(["run", str(weak), "--out", str(tmp_path / "lenient"), "--no-progress"]) == 0
    assert main(["run", str(weak), "--out", str(tmp_path / "weak"), "--no-progress",
                 "--strict"]) == VERDICT_FAILED == 3
    printed = capsys.readouterr()
    assert "no delamination at interface_0_1" in printed.out and "FAIL" in printed.out
    assert "(--strict: exit status 3)" in printed.err
    summary = json.loads((tmp_path / "weak" / "summary.json").read_text())
    (row,) = summary["delamination"]
    assert row["verdict"] == "fail" and row["value"] >= 1.0 and row["limit"] == 1.0
    assert summary["verdict"] == {"pass": False, "failed": [row["condition"]],
                                  "not_applicable": [
        "crystallized fraction of the alloy (substantially amorphous)",
        next(r["condition"] for r in summary["process_window"]
             if r["condition"].startswith("maximum temperature"))]}
    assert any(w.startswith("copper is elastic") and "flow stress 70 MPa" in w
               and 'behaviour = "plastic"' in w for w in summary["warnings"])
    assert summary["final"]["von_mises_by_material"]["copper"]["max"] \
        >= summary["final"]["max_von_mises"]
    assert summary["units"]["*traction*"] == "Pa" and summary["units"]["*temperature*"] == "K"
    assert len(summary["git_commit"]) == 40 and summary["timestamp"].startswith("20")
    log = (tmp_path / "weak" / "run.log").read_text().splitlines()
    assert log[0].startswith("# command: sinter run ") and "--strict" in log[0]
    assert log[1].startswith(f"# sinterfem {summary['sinterfem_version']}, git commit "
                             f"{summary['git_commit']}")
    assert "copper is elastic" in "\n".join(log)
    # every CSV column says its SI unit, or is dimensionless (or a label)
    headers = {path.name: path.read_text().splitlines()[0].split(",")
               for path in (tmp_path / "weak").glob("*.csv")}
    assert headers["history.csv"][:3] == ["time_s", "temperature_K", "step"]
    assert "normal_traction_averaged_Pa" in headers["interface.csv"]
    endings = tuple(f"_{suffix}" for suffix in units.COLUMN_SUFFIX.values())
    for name, columns in headers.items():
        for column in columns:
            quantity = column.partition(":")[0]
            assert quantity.endswith(endings) or quantity in units.DIMENSIONLESS_COLUMNS, \
                (name, column)
    assert main(["run", str(strong), "--out", str(tmp_path / "strong"), "--no-progress",
                 "--strict", "-q"]) == 0


def test_version():
    result = sinter("--version")
    assert result.returncode == 0 and result.stdout.startswith("sinter (sinterfem) ")


@pytest.mark.parametrize("text, key", [
    (SMALL_BILAYER.replace("mesh_size", "mesh_sise"), "geometry.mesh_sise"),
    (SMALL_BILAYER.replace('"80 um"', '"80 GPa"'), "geometry.length"),
    (SMALL_BILAYER.replace('"80 um"', '"80 furlongs per fortnight"'), "geometry.length"),
    (SMALL_BILAYER.replace('thickness = "8 um" },\n', 'thickness = "-8 um" },\n'),
     "geometry.layers[0].thickness"),
    (RECURVED_KEYS.format(pitch="6 um", neck="2 um", head="1.5 um"), "geometry.head_width"),
])
def test_bad_case_gives_one_line_and_no_results(tmp_path, text, key):
    case = tmp_path / "bad.toml"
    case.write_text(text)
    out = tmp_path / "out"
    result = sinter("run", case, "--out", out)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(case) in lines[0] and key in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_unmeshable_geometry_gives_one_line_and_no_results(tmp_path):
    # Projections wider (with their rounded feet) than the pitch cannot stand side by side.
    case = tmp_path / "wide.toml"
    case.write_text(RECURVED_KEYS.format(pitch="3 um", neck="2.5 um", head="2.9 um"))
    out = tmp_path / "out"
    result = sinter("run", case, "--out", out)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pitch" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.toml"]


def test_make_demo(tmp_path):
    result = subprocess.run(["make", "demo"], cwd=REPO, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "max risk index" in result.stdout
    summary = json.loads((REPO / "results" / "recurved-2d" / "summary.json").read_text())
    assert summary["geometry"]["recurved"] is True
