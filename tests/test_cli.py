"""The command line end to end: check, run, --np 2, errors, and `make demo`; the parser's
options and help texts."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tomllib

import pytest
from test_parallel import assert_same_results, process_physics

from solver.cli import VERDICT_FAILED, _parser, main
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


# each command with its positional arguments, as a user types it
COMMAND_LINES = {
    "check": ["check", "case.toml"],
    "mesh": ["mesh", "case.toml", "--out", "mesh"],
    "run": ["run", "case.toml"],
    "pulloff": ["pulloff", "case.toml"],
    "view": ["view", "results/case"],
    "report": ["report", "results/case"],
    "sweep": ["sweep", "sweep.toml"],
}


@pytest.mark.parametrize("command", sorted(COMMAND_LINES))
@pytest.mark.parametrize(("option", "attribute"),
                         [("-q", "quiet"), ("-v", "verbose"), ("--no-progress", "no_progress")])
def test_every_command_takes_the_global_options(command, option, attribute):
    # the README calls -q, -v and --no-progress global: after the subcommand and before it
    for argv in ([*COMMAND_LINES[command], option], [option, *COMMAND_LINES[command]]):
        args = _parser().parse_args(argv)
        assert args.command == command and getattr(args, attribute) is True, argv
    args = _parser().parse_args(COMMAND_LINES[command])
    assert not hasattr(args, attribute)  # main() reads an absent option as off


def test_pulloff_runs_with_no_progress_and_quiet(tmp_path):
    # a refused option exits before anything is solved: the dry case is enough
    bad = tmp_path / "bad.toml"
    bad.write_text(SMALL_BILAYER.replace('mesh_size = "4 um"', 'mesh_size = "-4 um"'))
    result = sinter("pulloff", bad, "--no-progress", "-q")
    assert result.returncode == 2 and "unrecognized arguments" not in result.stderr
    assert "mesh_size" in result.stderr


def test_every_positional_argument_has_a_help_text():
    subparsers = next(action for action in _parser()._actions
                      if isinstance(action, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(COMMAND_LINES)
    for name, command in subparsers.choices.items():
        positionals = [action for action in command._actions if not action.option_strings]
        assert positionals, name
        for action in positionals:
            assert action.help, f"sinter {name}: {action.dest} has no help text"


def test_report_of_a_pulloff_result_is_one_line(tmp_path, capsys):
    # a new user's natural next step after `sinter pulloff`: an explanation, not a traceback
    (tmp_path / "summary.json").write_text(json.dumps({"case": "x", "pulloff": {}}))
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sinter: error: ") and "a pull-off result" in error
    assert "pulloff.png" in error and "\n" not in error
    assert not (tmp_path / "report.html").exists()


def test_check_accepts_every_shipped_case_and_sweep(capsys):
    sweeps = []
    for case in sorted(CASES.glob("*.toml")):
        assert main(["check", str(case)]) == 0, case
        if "sweep" in tomllib.loads(case.read_text()):
            sweeps.append(case)
    out = capsys.readouterr().out
    assert "ok" in out and len(sweeps) == 2
    # a sweep file is checked as a sweep: expanded, every case validated
    assert (f"{CASES / 'sweep-process-window.toml'}: ok: sweep of 12 case(s) (grid) over "
            "schedule.steps[0].to, schedule.steps[1].hold, base sweep-process-base.toml") in out


def test_check_of_a_sweep_lists_each_invalid_case(tmp_path):
    # bare temperatures in a list of levels: the cases at 300 are invalid, those at 500 degC
    # not; nothing is written
    shutil.copy(CASES / "sweep-process-base.toml", tmp_path)
    text = (CASES / "sweep-process-window.toml").read_text().replace(
        '{ from = "300 degC", to = "600 degC", count = 4 }', '[300, "500 degC"]')
    (tmp_path / "sweep.toml").write_text(text)
    result = sinter("check", "sweep.toml", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr  # one per hold time at 300
    assert all(line.startswith("sinter: error: sweep.toml: case process-base-") for line in lines)
    assert ("(schedule.steps[0].to = 300, schedule.steps[1].hold = 0.5 h): schedule.steps[0].to: "
            "300 is 300 K (26.85 degC) or 300 degC (573.15 K): give the unit") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep-process-base.toml", "sweep.toml"]


def test_every_problem_of_a_case_is_a_line_of_its_own(tmp_path):
    case = tmp_path / "bad.toml"
    case.write_text(SMALL_BILAYER.replace("mesh_size", "mesh_sise")
                    .replace('"80 um"', '"80 GPa"').replace('"400 degC"', "400"))
    result = sinter("check", case, "-v")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sinter: error: {case}: geometry.mesh_sise: unknown key; did you mean mesh_size?",
        f"sinter: error: {case}: geometry.length: expected a positive length (e.g. '2 um'), "
        "got '80 GPa'",
        f"sinter: error: {case}: schedule.start: 400 is 400 K (126.85 degC) or 400 degC "
        "(673.15 K): give the unit, e.g. '400 degC' or '400 K'",
    ]


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
        "case.toml", "resolved.toml", "run.log", "state.npz", "kinetics.csv", "kinetics.png"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 1 and summary["dofs"] > 0
    assert summary["interfaces"]["interface_0_1"]["materials"] == ["copper", "polyimide"]
    assert summary["final"]["temperature"] == pytest.approx(298.15)
    # copper and polyimide: measured data, no placeholder; elastic copper above its flow
    # stress is the one warning
    assert [warning.split(" ")[0] for warning in summary["warnings"]] == ["copper"]
    assert "above its flow stress" in summary["warnings"][0]
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
    # the warning about the library's mix comes first, then the one error line
    warning, *lines = result.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {case}: material 'mix': ")
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
