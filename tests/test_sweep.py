"""Parameter sweeps: expansion, the local backend, results, resume, plots, and Slurm end to end
against a real single-node cluster (skipped where slurmctld is not installed)."""

import importlib.util
import json
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
from slurm_cluster import SlurmCluster, available, describe

from solver.case import load_case
from solver.cli import VERDICT_FAILED, main
from solver.sweep import plots
from solver.sweep.backends import pending, slurm_script
from solver.sweep.plan import (
    SweepError,
    case_hash,
    case_toml,
    load_sweep,
    parse_key_path,
    read_plan,
    set_key_path,
    toml_dumps,
)
from solver.sweep.plots import DELAMINATION, plot, sensitivity
from solver.sweep.results import flatten, metric_units

from conftest import CASES, REPO

# 60 um bilayer on a 4 um mesh: about a second per case.
TINY_BILAYER = """
[case]
name = "tiny"
[geometry]
kind = "layers"
length = "60 um"
layers = [ { material = "copper", thickness = "8 um" },
           { material = "polyimide", thickness = "8 um" } ]
mesh_size = "4 um"
[materials.polyimide]
youngs_modulus = "2.5 GPa"
[schedule]
start = "400 degC"
steps = [ { to = "300 degC", rate = "5 K/min" }, { hold = "1 h" },
          { to = "25 degC", rate = "5 K/min" } ]
[solver]
temperature_increment = "200 K"
"""

# Two thicknesses that run, one too thin for OpenCASCADE (a run-time failure), and a
# material that does not exist (invalid: never run).
TINY_SWEEP = """
[sweep]
base = "tiny.toml"
method = "grid"
[parameters]
"geometry.layers[1].thickness" = ["4 um", "8 um", "1e-9 um"]
"geometry.layers[1].material" = ["polyimide", "unobtainium"]
[[checks]]
name = "thin"
key = "geometry.layers[1].thickness"
max = "6 um"
"""


def write_sweep(tmp_path, sweep_text, base_text=TINY_BILAYER, name="sweep.toml"):
    (tmp_path / "tiny.toml").write_text(base_text)
    path = tmp_path / name
    path.write_text(sweep_text)
    return path


# --- Expansion ----------------------------------------------------------------------------


def test_key_paths():
    assert parse_key_path("schedule.steps[1].hold") == ("schedule", "steps", 1, "hold")
    assert parse_key_path("geometry.layers[0].thickness") == ("geometry", "layers", 0,
                                                              "thickness")
    document = tomllib.loads(TINY_BILAYER)
    set_key_path(document, parse_key_path("geometry.layers[1].thickness"), "3 um")
    set_key_path(document, parse_key_path("materials.copper.poisson_ratio"), 0.3)
    assert document["geometry"]["layers"][1] == {"material": "polyimide", "thickness": "3 um"}
    assert document["materials"]["copper"] == {"poisson_ratio": 0.3}
    for key, problem in [("geometry.layers[2].thickness", "has 2 entries"),
                         ("geometry.length[0]", "is not a list"),
                         ("interface.steps[0].hold", "no list interface.steps")]:
        with pytest.raises(ValueError, match=problem.replace("[", r"\[")):
            set_key_path(document, parse_key_path(key), 1.0)


def test_toml_writer_round_trips_case_content():
    document = tomllib.loads(TINY_BILAYER)
    document["case"]["description"] = 'quotes " and \\ and ünïcode\nand a newline'
    document["case"]["flag"] = True
    document["weird key"] = {"x.y": [1, 2.5e-06, float("inf")]}
    assert tomllib.loads(toml_dumps(document)) == document
    assert tomllib.loads(case_toml(document)) == document


def test_grid_expands_every_combination_with_units(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, """
[sweep]
base = "tiny.toml"
[parameters]
"geometry.layers[0].thickness" = { from = "4 um", to = "0.01 mm", count = 4 }
"schedule.steps[1].hold" = ["30 min", "2 h"]
"schedule.steps[0].to" = { from = "300 degC", to = "350 degC", count = 2 }
"""), tmp_path / "out")
    assert len(sweep.cases) == 4 * 2 * 2
    assert [case.values["geometry.layers[0].thickness"] for case in sweep.cases[::4]] == \
        ["4 um", "6 um", "8 um", "10 um"]
    first = sweep.cases[0]
    assert first.si["geometry.layers[0].thickness"] == pytest.approx(4e-6)
    assert first.si["schedule.steps[1].hold"] == pytest.approx(1800)
    assert first.si["schedule.steps[0].to"] == pytest.approx(573.15)
    assert len({case.name for case in sweep.cases}) == len(sweep.cases)
    assert all(case.error is None for case in sweep.cases)
    assert first.name == f"tiny-{first.hash[:10]}"
    # the hash is of the content: the case's own name does not enter it
    assert case_hash(first.document) == first.hash
    assert case_hash({**first.document, "case": {"name": "other"}}) == first.hash


ONE_LAYER = TINY_BILAYER.replace(''',
           { material = "polyimide", thickness = "8 um" } ]''', " ]").replace(
    'name = "tiny"', 'name = "bare"')


def test_references_follow_the_parameters_they_have(tmp_path):
    (tmp_path / "bare.toml").write_text(ONE_LAYER)
    sweep = load_sweep(write_sweep(tmp_path, """
[sweep]
base = "tiny.toml"
references = ["bare.toml"]
[parameters]
"geometry.layers[1].thickness" = ["4 um", "8 um", "12 um"]
"schedule.steps[1].hold" = ["30 min", "2 h"]
"""), tmp_path / "out")
    samples = [case for case in sweep.cases if case.reference is None]
    references = [case for case in sweep.cases if case.reference is not None]
    assert len(samples) == 6
    # the one-layer reference has no layers[1]: it follows the hold only
    assert [case.values for case in references] == [{"schedule.steps[1].hold": "30 min"},
                                                    {"schedule.steps[1].hold": "2 h"}]
    assert {case.reference for case in references} == {"bare"}
    assert [case.index for case in sweep.cases] == list(range(8))
    assert all(case.error is None and case.name.startswith("bare-") for case in references)
    assert sweep.references == [str(tmp_path / "bare.toml")]


def test_bad_reference_names_its_key(tmp_path):
    (tmp_path / "bare.toml").write_text(ONE_LAYER.replace('"4 um"', '"-4 um"'))
    path = write_sweep(tmp_path, '[sweep]\nbase = "tiny.toml"\nreferences = ["bare.toml"]\n'
                       '[parameters]\n"geometry.length" = ["60 um"]')
    with pytest.raises(SweepError, match=r"sweep.references\[0\]"):
        load_sweep(path, tmp_path / "out")


@pytest.mark.parametrize("method", ["lhs", "sobol"])
def test_samples_are_reproducible_and_in_range(tmp_path, method):
    text = f"""
[sweep]
base = "tiny.toml"
method = "{method}"
samples = 16
seed = 7
[parameters]
"geometry.layers[0].thickness" = {{ from = "4 um", to = "12 um" }}
"schedule.steps[1].hold" = {{ from = "6 min", to = "10 h", distribution = "loguniform" }}
"geometry.layers[1].material" = ["polyimide", "copper"]
"""
    sweep = load_sweep(write_sweep(tmp_path, text), tmp_path / "out")
    again = load_sweep(tmp_path / "sweep.toml", tmp_path / "out")
    assert len(sweep.cases) == 16
    assert [c.hash for c in sweep.cases] == [c.hash for c in again.cases]
    thickness = np.array([c.si["geometry.layers[0].thickness"] for c in sweep.cases])
    hold = np.array([c.si["schedule.steps[1].hold"] for c in sweep.cases])
    assert thickness.min() >= 4e-6 and thickness.max() <= 12e-6
    assert hold.min() >= 360 and hold.max() <= 36000
    if method == "lhs":  # one sample in each of the 16 strata of every dimension
        strata = np.floor((thickness - 4e-6) / 8e-6 * 16).astype(int)
        assert sorted(strata) == list(range(16))
    assert {c.values["geometry.layers[1].material"] for c in sweep.cases} == {"polyimide",
                                                                             "copper"}
    seeded = load_sweep(write_sweep(tmp_path, text.replace("seed = 7", "seed = 8")),
                        tmp_path / "out")
    assert [c.hash for c in seeded.cases] != [c.hash for c in sweep.cases]


@pytest.mark.parametrize("sweep_text, key", [
    ('[sweep]\nbase = "tiny.toml"\nmethod = "random"\n[parameters]\n"geometry.length" = [1]',
     "sweep.method"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = { from = 1, to = 2 }',
     "parameters.geometry.length"),
    ('[sweep]\nbase = "tiny.toml"\nmethod = "lhs"\n[parameters]\n"geometry.length" = [1]',
     "sweep.samples"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.layers[3].thickness" = ["1 um"]',
     "parameters.geometry.layers[3].thickness"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = '
     '{ from = "1 um", to = "2 GPa", count = 2 }', "parameters.geometry.length"),
    ('[sweep]\nbase = "missing.toml"\n[parameters]\n"geometry.length" = [1]', "sweep.base"),
    ('[sweep]\nbase = "tiny.toml"\nfields = "yes"\n[parameters]\n"geometry.length" = [1]',
     "sweep.fields"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = [1]\n[slurm]\n'
     'setup = "module load dolfinx"', "slurm.setup"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = [1]\n[slurm]\n'
     'launcher = ""', "slurm.launcher"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = [1]\n[slurm]\n'
     'max_parallel = 0', "slurm.max_parallel"),
    ('[sweep]\nbase = "tiny.toml"\n[parameters]\n"geometry.length" = [1]\n[slurm]\n'
     'launch = "srun"', "slurm.launch"),
])
def test_bad_sweep_file_gives_one_line(tmp_path, capsys, sweep_text, key):
    path = write_sweep(tmp_path, sweep_text)
    with pytest.raises(SweepError, match=key.replace("[", r"\[")):
        load_sweep(path, tmp_path / "out")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and key in error[0] and str(path) in error[0]
    assert not (tmp_path / "out").exists()


def test_shipped_sweeps_expand(tmp_path, capsys):
    for name, count in [("sweep-recurved-neck.toml", 15), ("sweep-process-window.toml", 12)]:
        assert main(["sweep", str(CASES / name), "--out", str(tmp_path / name),
                     "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"{count} case(s)" in out and "invalid" not in out, out
        assert not (tmp_path / name).exists()


def test_summary_flattens_to_columns():
    summary = {"dofs": 10, "interfaces": {"i": {"max_risk": 0.5, "materials": ["a", "b"]}},
               "process_window": [{"condition": "binder mass loss (binder undecomposed)",
                                   "value": 0.02, "limit": 0.01, "unit": "1", "pass": False},
                                  {"condition": "maximum temperature below (x)",
                                   "value": 673.15, "limit": 900.0, "unit": "K",
                                   "pass": None}],
               "delamination": [{"condition": "no delamination at i (risk below 1)",
                                 "value": 0.5, "limit": 1.0, "unit": "1", "pass": True}],
               "verdict": {"pass": True, "failed": [], "not_applicable": ["x"]},
               "units": {"*max_risk*": "1", "dofs": "1"}}
    assert flatten(summary) == {"dofs": 10, "interfaces.i.max_risk": 0.5,
                                "process_window.binder_mass_loss.value": 0.02,
                                "process_window.binder_mass_loss.pass": False,
                                "process_window.maximum_temperature_below.value": 673.15,
                                "process_window.maximum_temperature_below.pass": None,
                                "delamination.no_delamination_at_i.value": 0.5,
                                "delamination.no_delamination_at_i.pass": True,
                                "verdict.pass": True, "units.*max_risk*": "1",
                                "units.dofs": "1"}
    units = metric_units(summary)
    assert units["process_window.maximum_temperature_below.value"] == "K"
    assert units["interfaces.i.max_risk"] == "1" and units["dofs"] == "1"


# --- Local backend ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The tiny sweep run once with the local backend: (sweep file, directory, table)."""
    tmp_path = tmp_path_factory.mktemp("local")
    path = write_sweep(tmp_path, TINY_SWEEP)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "2", "-q"]) == 0
    return path, out, pd.read_csv(out / "results.csv")


def test_local_sweep_records_every_case(local_sweep):
    path, out, table = local_sweep
    assert len(table) == 6
    if importlib.util.find_spec("pyarrow") is not None:
        assert pd.read_parquet(out / "results.parquet")["status"].tolist() == list(table["status"])
    assert sorted(table["status"]) == ["failed"] * 4 + ["ok"] * 2
    ok = table[table["status"] == "ok"]
    # every column with a dimension says its SI unit
    assert sorted(ok["geometry.layers[1].thickness_m"]) == pytest.approx([4e-6, 8e-6])
    assert (ok["interfaces.interface_0_1.max_risk"] > 0).all()
    assert (ok["peak.max_von_mises_Pa"] >= ok["final.max_von_mises_Pa"]).all()
    assert (ok["interfaces.interface_0_1.max_normal_traction_averaged_Pa"] > 0).all()
    assert ok["process_window.maximum_temperature_below_the_crystallization_temperature"
              ".value_K"].notna().all()
    assert ok["verdict.pass"].notna().all()
    assert list(ok["check.thin"]) == list(ok["geometry.layers[1].thickness_m"] < 6e-6)
    for column in ("case_hash", "sinterfem_version", "git_commit", "dolfinx_version", "host",
                   "ranks", "wall_time_s"):
        assert ok[column].notna().all(), column
    assert (ok["ranks"] == 1).all() and (ok["wall_time_s"] > 0).all()
    failed = table[table["status"] == "failed"].set_index("geometry.layers[1].material")
    assert failed.loc["unobtainium", "error"].str.contains("unknown material").all()
    # the case that validates but cannot be meshed: its one-line error, not a traceback
    too_thin = failed.loc["polyimide", "error"]
    assert "could not mesh" in too_thin and "\n" not in too_thin
    # every case file is a valid case on its own, with the hash the table records
    for row in table.itertuples():
        case_file = out / "cases" / f"{row.name}.toml"
        assert case_hash(tomllib.loads(case_file.read_text())) == row.case_hash
        if row.status == "ok":
            assert load_case(case_file).case.name == row.name
            summary = json.loads((out / "runs" / row.name / "summary.json").read_text())
            assert summary["case"] == row.name
            # by default a sweep writes the tables of each case, no fields
            assert load_case(case_file).output.fields == []
            written = {p.name for p in (out / "runs" / row.name).iterdir()}
            assert {"summary.json", "interface.csv", "history.csv"} <= written
            assert not {name for name in written if name.startswith("fields.")
                        or name.endswith(".bp")}


def test_resume_skips_complete_cases_and_reruns_failed(local_sweep, capsys):
    path, out, table = local_sweep
    ok = table[table["status"] == "ok"]["name"]
    mtimes = {name: (out / "runs" / name / "summary.json").stat().st_mtime for name in ok}
    assert main(["sweep", str(path), "--out", str(out), "--dry-run"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("[done]") == 2 and listing.count("[to run]") == 1
    # a new value: only its cases (and the failed one) run
    path.write_text(TINY_SWEEP.replace('"8 um", ', '"8 um", "6 um", '))
    assert main(["sweep", str(path), "--out", str(out), "-q"]) == 0
    assert {name: (out / "runs" / name / "summary.json").stat().st_mtime
            for name in ok} == mtimes
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 8 and (table["status"] == "ok").sum() == 3
    path.write_text(TINY_SWEEP)


def test_sweep_writes_fields_on_request(tmp_path):
    """[sweep] fields = true: each case writes the fields its [output] asks for (here the
    base case's defaults: fields.xdmf at the final state)."""
    path = write_sweep(tmp_path, '[sweep]\nbase = "tiny.toml"\nfields = true\n[parameters]\n'
                       '"geometry.layers[1].thickness" = ["8 um"]\n')
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), "-q"]) == 0
    (run,) = (out / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["outputs"]["files"] == ["fields.xdmf"] and (run / "fields.h5").exists()
    assert summary["outputs"]["times"] == [summary["schedule"]["duration"]]


def test_status_collect_and_plot(local_sweep, capsys):
    path, out, _ = local_sweep
    assert main(["sweep", str(path), "--out", str(out), "-q"]) == 0  # back to 6 cases
    capsys.readouterr()
    assert main(["sweep", "status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "6 case(s): 2 ok, 4 failed, 0 pending" in status
    assert status.count(": failed: ") == 4
    (out / "results.csv").unlink()
    assert main(["sweep", "collect", str(out)]) == 0
    assert len(pd.read_csv(out / "results.csv")) == 6
    assert main(["sweep", "plot", str(out)]) == 0
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert "line-interfaces.interface_0_1.max_risk.png" in pngs
    assert all((out / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)
    # --strict: exit status 3 when a case that ran fails its verdict
    assert main(["sweep", "collect", str(out), "--strict", "-q"]) == 0
    name = pd.read_csv(out / "results.csv").query("status == 'ok'")["name"].iloc[0]
    summary_file = out / "runs" / name / "summary.json"
    summary = json.loads(summary_file.read_text())
    try:
        summary_file.write_text(json.dumps({**summary, "verdict": {
            "pass": False, "failed": ["no delamination at interface_0_1"],
            "not_applicable": []}}))
        capsys.readouterr()
        assert main(["sweep", "collect", str(out), "--strict"]) == VERDICT_FAILED == 3
        printed = capsys.readouterr()
        assert "1 fail their verdict" in printed.out and name in printed.err
        assert main(["sweep", "collect", str(out), "-q"]) == 0
    finally:
        summary_file.write_text(json.dumps(summary))


# The failing case first: the cases after it run in the same warm worker (--jobs 1).
FAIL_FIRST_SWEEP = """
[sweep]
base = "tiny.toml"
[parameters]
"geometry.layers[1].thickness" = ["1e-9 um", "4 um", "8 um"]
"""


def test_warm_workers_match_fresh_processes(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, FAIL_FIRST_SWEEP)
    warm, fresh = tmp_path / "warm", tmp_path / "fresh"
    assert main(["sweep", str(path), "--out", str(warm), "--jobs", "1", "-q"]) == 0
    monkeypatch.chdir(tmp_path)  # a relative --out: each fresh process runs inside it
    assert main(["sweep", str(path), "--out", "fresh", "--jobs", "2", "--fresh-processes",
                 "-q"]) == 0
    tables = [pd.read_csv(out / "results.csv").set_index("name") for out in (warm, fresh)]
    assert list(tables[0]["status"]) == list(tables[1]["status"]) == ["failed", "ok", "ok"]
    # the failure is the same one line, and the worker went on to the next cases
    assert tables[0]["error"].iloc[0] == tables[1]["error"].iloc[0]
    assert "could not mesh" in tables[0]["error"].iloc[0]
    name = tables[0].index[0]
    assert "could not mesh" in (warm / "status" / f"{name}.stderr").read_text()
    for name in tables[0].index[1:]:
        summaries = [json.loads((out / "runs" / name / "summary.json").read_text())
                     for out in (warm, fresh)]
        for summary, out in zip(summaries, (warm, fresh), strict=True):
            del summary["wall_time"], summary["timestamp"]
            assert summary.pop("case_file") == str(out / "cases" / f"{name}.toml")
        assert summaries[0] == summaries[1]  # every number to the last bit


def test_a_dying_worker_fails_only_its_case(tmp_path, monkeypatch):
    from sweep_runners import crash_on_boom

    from solver.sweep import workers
    from solver.sweep.backends import read_status
    from solver.sweep.plan import SweepCase

    monkeypatch.setattr(workers, "CASES_PER_WORKER", 2)
    cases = [SweepCase(index, name, f"hash-{name}", {}, {})
             for index, name in enumerate(["a", "b", "boom", "c", "d", "e"])]
    records = {record["name"]: record
               for record in workers.run_warm(tmp_path, cases, 1, run=crash_on_boom)}
    assert sorted(records) == ["a", "b", "boom", "c", "d", "e"]
    assert records["boom"]["status"] == "failed"
    assert records["boom"]["error"] == "the worker process died (exit status 7)"
    assert read_status(tmp_path, cases[2])["status"] == "failed"
    assert all(records[name]["status"] == "ok" for name in "abcde")
    # one worker at a time: a new one after two cases, and after the crash
    assert records["a"]["worker"] == records["b"]["worker"] != records["c"]["worker"]
    assert records["c"]["worker"] == records["d"]["worker"] != records["e"]["worker"]


def test_design_maps_and_sensitivity(tmp_path):
    rng = np.random.default_rng(1)
    n = 64
    table = pd.DataFrame({"a": rng.random(n), "b": rng.random(n), "c": rng.random(n),
                          "status": "ok"})
    table["metric"] = 5 * table["a"] + 1 * table["b"] + 0.01 * rng.random(n)
    table["checks_passed"] = table["a"] < 0.8
    for method in ("sobol", "lhs"):
        _, values = sensitivity(table, ["a", "b", "c"], "metric", method)
        assert abs(values["a"]) > abs(values["b"]) > abs(values["c"])
    _, indices = sensitivity(table, ["a", "b", "c"], "metric", "sobol")
    assert indices["a"] == pytest.approx(25 / 26, abs=0.15)
    files = plot(table, ["a", "b", "c"], "sobol", tmp_path / "many", ["metric"])
    assert sorted(p.name for p in files) == ["parallel-metric.png", "sensitivity-metric.png"]
    grid = pd.DataFrame([(a, b) for a in (1.0, 2.0, 3.0) for b in (10.0, 20.0)],
                        columns=["a", "b"]).assign(status="ok", metric=lambda t: t.a * t.b)
    files = plot(grid, ["a", "b"], "grid", tmp_path / "two", ["metric"])
    assert sorted(p.name for p in files) == ["map-metric.png", "sensitivity-metric.png"]


def test_a_long_plot_title_is_wrapped_within_the_picture(tmp_path, monkeypatch):
    """A metric's and a parameter's dotted names make a title wider than the plot: it is
    broken into lines, each inside the figure, not cut off at its edges."""
    metric = "peak.interfaces.interface_copper_mix.max_risk"
    parameter = "geometry.projection_neck_width_at_the_foil"
    table = pd.DataFrame({parameter: [1.0, 2.0, 3.0], metric: [0.5, 0.7, 0.6],
                          "status": "ok"})
    saved, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: saved.append(figure) or
                        save(figure, path))
    files = plot(table, [parameter], "grid", tmp_path, [metric])
    assert [p.name for p in files] == [f"line-{metric}.png"]
    figure = saved[0]
    title = figure.axes[0].title
    assert title.get_text() == f"{metric} vs\n{parameter}"
    extent = title.get_window_extent(figure.canvas.get_renderer())
    assert 0 <= extent.x0 and extent.x1 <= figure.bbox.width


@pytest.fixture
def drawn(monkeypatch):
    """The figures the design maps would save, by file name, instead of saving them."""
    figures = {}

    def keep(figure, path):
        figures[path.name] = figure
        return path

    monkeypatch.setattr("solver.sweep.plots._save", keep)
    return figures


def test_design_maps_in_the_sweep_files_units_with_the_risk_limit(tmp_path, drawn):
    table = pd.DataFrame({"schedule.steps[0].to": [573.15, 673.15, 773.15],
                          "interfaces.i.max_risk": [0.5, 0.9, 1.3],
                          "final.max_von_mises": [2e8, 3e8, 4e8], "status": "ok"})
    table.attrs = {"units": {"schedule.steps[0].to": "K", "final.max_von_mises": "Pa",
                             "interfaces.i.max_risk": "1"},
                   "written_units": {"schedule.steps[0].to": "degC"}}
    plot(table, ["schedule.steps[0].to"], "grid", tmp_path)
    risk = drawn["line-interfaces.i.max_risk.png"].axes[0]
    assert risk.get_xlabel() == "schedule.steps[0].to [degC]"
    assert risk.get_ylabel() == "interfaces.i.max_risk"
    assert list(risk.lines[0].get_xdata()) == pytest.approx([300.0, 400.0, 500.0])
    limit = [line for line in risk.lines if line.get_label() == DELAMINATION]
    assert len(limit) == 1 and list(limit[0].get_ydata()) == [1.0, 1.0]
    stress = drawn["line-final.max_von_mises.png"].axes[0]
    assert stress.get_ylabel() == "final.max_von_mises [MPa]"
    assert list(stress.lines[0].get_ydata()) == pytest.approx([200.0, 300.0, 400.0])
    assert not [line for line in stress.lines if line.get_label() == DELAMINATION]


def test_reference_lines_on_design_maps(tmp_path, drawn):
    sweep = pd.DataFrame({"neck": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
                          "height": [2.0, 2.0, 2.0, 3.0, 3.0, 3.0]}).assign(
        status="ok", reference=None, metric=lambda t: t.neck + t.height)
    # a plain reference that shares the height but has no neck
    plain = pd.DataFrame({"neck": [np.nan, np.nan], "height": [2.0, 3.0], "status": "ok",
                          "reference": "plain", "metric": [9.0, 11.0]})
    one = sweep[sweep.height == 2.0]
    plot(pd.concat([one, plain]), ["neck", "height"], "grid", tmp_path, ["metric"])
    axes = drawn["line-metric.png"].axes[0]
    reference = [line for line in axes.lines if line.get_label() == "reference: plain"]
    assert len(reference) == 1
    assert list(reference[0].get_ydata()) == [9.0, 9.0]  # a horizontal line at its value
    plot(pd.concat([sweep, plain]), ["neck", "height"], "grid", tmp_path, ["metric"])
    assert "map-metric.png" in drawn and "sensitivity-metric.png" in drawn
    colour_bar = drawn["map-metric.png"].axes[1]
    assert sorted(line.get_ydata()[0] for line in colour_bar.lines) == [9.0, 11.0]
    # beside the map: the metric against the height it shares, one line per neck
    lines = {line.get_label(): list(line.get_ydata())
             for line in drawn["lines-metric.png"].axes[0].lines}
    assert lines["reference: plain"] == [9.0, 11.0]
    assert lines["neck = 1"] == [3.0, 4.0]


# --- Slurm backend ------------------------------------------------------------------------


NATIVE_SLURM = """
[slurm]
time = "00:10:00"
setup = ['eval "$(conda shell.bash hook)"', "conda activate sinterfem"]
"""


def test_slurm_dry_run_prints_the_script_with_setup_and_launcher(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SINTERFEM_LAUNCHER", raising=False)
    sweep_text = TINY_SWEEP.replace('"4 um", ', "")
    out = tmp_path / "out"

    def dry_run(text):
        path = write_sweep(tmp_path, text)
        assert main(["sweep", str(path), "--out", str(out), "--backend", "slurm",
                     "--dry-run"]) == 0
        return capsys.readouterr().out.split("# the sbatch script", 1)[1]

    # the native route: the set-up lines, before set -u, then the environment's python3
    script = dry_run(sweep_text + NATIVE_SLURM)
    lines = script.splitlines()
    assert "#SBATCH --array=0-1" in lines and "#SBATCH --time=00:10:00" in lines
    assert "#SBATCH --nodes=1" in lines
    setup = lines.index('eval "$(conda shell.bash hook)"')
    assert lines[setup + 1] == "conda activate sinterfem" and lines[setup + 2] == "set -u"
    assert lines[-1] == f'exec python3 -m solver.sweep.backends task {out} "$name"'
    assert not out.exists()

    # a launcher, as written, runs the task's python3
    script = dry_run(sweep_text + '[slurm]\nlauncher = "apptainer exec /p/sinterfem.sif"\n')
    assert script.splitlines()[-1].startswith("exec apptainer exec /p/sinterfem.sif python3 ")
    # under a bundle's launcher, its path is the default
    monkeypatch.setenv("SINTERFEM_LAUNCHER", "/p/sinter bundle/bin/sinter-env")
    script = dry_run(sweep_text)
    assert script.splitlines()[-1].startswith("exec '/p/sinter bundle/bin/sinter-env' python3 ")
    # with neither, this interpreter
    monkeypatch.delenv("SINTERFEM_LAUNCHER")
    assert dry_run(sweep_text).splitlines()[-1].startswith(f"exec {sys.executable} -m ")

    # --no-submit writes the directory and the script, and says how to submit it
    path = write_sweep(tmp_path, sweep_text)
    assert main(["sweep", str(path), "--out", str(out), "--backend", "slurm", "--no-submit",
                 "-q"]) == 0
    script = out / "slurm" / "sweep-0.sbatch"
    assert f"sbatch {script}" in capsys.readouterr().out
    assert script.read_text() == slurm_script(out, read_plan(out), pending(out, read_plan(out)),
                                              {})
    assert not (out / "slurm" / "jobs.json").exists()


@pytest.fixture
def slurm_cluster(tmp_path):
    cluster = SlurmCluster(tmp_path / "slurm-cluster").start()
    yield cluster
    cluster.stop()


@pytest.mark.skipif(not available(), reason="needs slurmctld, slurmd, munged and root")
def test_slurm_sweep_end_to_end(tmp_path, slurm_cluster):
    path = write_sweep(tmp_path, TINY_SWEEP.replace('"4 um", ', ""))  # 1 ok, 1 fails, 2 invalid
    out = tmp_path / "sweep"

    def sinter(*args):
        result = slurm_cluster.run(["python3", "-m", "solver.cli", *map(str, args)], cwd=REPO)
        assert result.returncode == 0, result.stderr + describe(slurm_cluster)
        return result.stdout

    # submit and return at once; status and collect work later
    submitted = sinter("sweep", path, "--out", out, "--backend", "slurm", "--time", "00:05:00",
                       "-q")
    assert "submitted job" in submitted
    slurm_cluster.wait_for_queue_empty()
    assert "4 case(s): 1 ok, 3 failed, 0 pending" in sinter("sweep", "status", out)
    sinter("sweep", "collect", out)
    table = pd.read_csv(out / "results.csv").set_index("geometry.layers[1].material")
    ok = table[table["status"] == "ok"]
    assert len(ok) == 1 and ok["slurm_job"].str.match(r"\d+_\d").all()
    assert ok["final.max_von_mises_Pa"].notna().all()
    assert "could not mesh" in table.loc["polyimide"].query("status == 'failed'")["error"].iloc[0]
    script = (out / "slurm" / "sweep-0.sbatch").read_text()
    assert "#SBATCH --array=0-1" in script and "#SBATCH --time=00:05:00" in script

    # a resubmission skips the complete case: one task, the failed case, again
    summary = out / "runs" / ok["name"].iloc[0] / "summary.json"
    mtime = summary.stat().st_mtime
    sinter("sweep", path, "--out", out, "--backend", "slurm", "--wait", "-q")
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())
    assert [job["cases"] for job in jobs] == [2, 1]
    assert "#SBATCH --array=0-0" in (out / "slurm" / "sweep-1.sbatch").read_text()
    assert summary.stat().st_mtime == mtime
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["status"]) == ["failed"] * 3 + ["ok"]
