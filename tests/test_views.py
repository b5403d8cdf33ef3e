"""The outputs of a real run as real ParaView reads them, and `sinter view`.

ParaView runs as pvbatch in a subprocess (under Xvfb without a display); what it saw is
compared with what the solver wrote, read back from fields.h5 with h5py.
"""

import json
import shutil
import xml.etree.ElementTree as ET

import h5py
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from solver.cli import main
from solver.report import views

from conftest import CASES

pytestmark = pytest.mark.skipif(shutil.which("pvbatch") is None,
                                reason="ParaView's pvbatch is not on the PATH")

# What ParaView sees, saved for the test: per reader, per block, the points, the cell
# connectivity and every array at the last time step, the ranges ParaView reports, and a
# picture of the von Mises stress on the grid that `sinter view` builds from the blocks.
INSPECT = '''
import json
import sys

import numpy
from paraview import servermanager, simple
from vtkmodules.util.numpy_support import vtk_to_numpy


def leaves(data):
    iterator = data.NewIterator()
    iterator.InitTraversal()
    while not iterator.IsDoneWithTraversal():
        yield iterator.GetCurrentDataObject()
        iterator.GoToNextItem()


def main(fields_xdmf, tags_xdmf, pvscripts, out):
    sys.path.insert(0, pvscripts)
    from render_views import COMBINE_BLOCKS

    seen, arrays = {}, {}
    fields = simple.Xdmf3ReaderS(FileName=fields_xdmf)
    tags = simple.Xdmf3ReaderS(FileName=tags_xdmf)
    end = fields.TimestepValues[-1]
    seen["times"] = list(fields.TimestepValues)
    combined = simple.ProgrammableFilter(Input=[fields, tags],
                                         OutputDataSetType="vtkUnstructuredGrid",
                                         Script=COMBINE_BLOCKS)
    for name, reader in (("fields", fields), ("tags", tags), ("combined", combined)):
        reader.UpdatePipeline(end)
        seen[name] = {"points": reader.GetDataInformation().GetNumberOfPoints(),
                      "ranges": {}, "blocks": []}
        for where, data in (("POINTS", reader.PointData), ("CELLS", reader.CellData)):
            for array in data.values():
                seen[name]["ranges"][f"{where}/{array.Name}"] = [
                    array.GetRange(component) for component in range(array.GetNumberOfComponents())]
        for index, block in enumerate(leaves(servermanager.Fetch(reader))
                                      if name != "combined" else [servermanager.Fetch(reader)]):
            key = f"{name}/{index}"
            arrays[f"{key}/points"] = vtk_to_numpy(block.GetPoints().GetData())
            arrays[f"{key}/cells"] = vtk_to_numpy(block.GetCells().GetConnectivityArray())
            names = []
            for where, data in (("POINTS", block.GetPointData()), ("CELLS", block.GetCellData())):
                for k in range(data.GetNumberOfArrays()):
                    names.append(f"{where}/{data.GetArrayName(k)}")
                    arrays[f"{key}/{names[-1]}"] = vtk_to_numpy(data.GetArray(k))
            seen[name]["blocks"].append({"points": block.GetNumberOfPoints(),
                                         "cells": block.GetNumberOfCells(), "arrays": names})
    numpy.savez(f"{out}/arrays.npz", **arrays)

    view = simple.CreateView("RenderView")
    view.ViewSize = [800, 600]
    view.ViewTime = end
    display = simple.Show(combined, view)
    simple.ColorBy(display, ("CELLS", "von_mises"))
    display.RescaleTransferFunctionToDataRange(False, True)
    view.ResetCamera()
    simple.SaveScreenshot(f"{out}/von_mises.png", view, ImageResolution=[800, 600])
    simple.Hide(combined, view)
    simple.Delete(view)
    with open(f"{out}/seen.json", "w") as stream:
        json.dump(seen, stream)


main(*sys.argv[1:])
'''

LOAD_STATE = '''
import json
import sys

from paraview import simple


def main(state):
    simple.LoadState(state)
    combined = simple.FindSource("all fields on one mesh")
    end = simple.GetAnimationScene().TimeKeeper.TimestepValues[-1]
    combined.UpdatePipeline(end)
    von_mises = combined.CellData["von_mises"].GetRange()
    drawn = simple.FindSource("von Mises averaged to the nodes of each material")
    drawn.UpdatePipeline(end)
    names = sorted(name for name, _ in simple.GetSources())
    result = {"end": end, "von_mises": von_mises, "sources": names,
              "bounds": combined.GetDataInformation().GetBounds(),
              "drawn_bounds": drawn.GetDataInformation().GetBounds(),
              "drawn_points": drawn.PointData.keys(), "drawn_cells": drawn.CellData.keys(),
              "drawn_range": drawn.PointData["von Mises [MPa]"].GetRange()}
    for view in simple.GetViews():
        simple.Delete(view)
    print(json.dumps(result))


main(sys.argv[1])
'''


# Every field the process stage has, at every time step (the default writes the final state)
EVERY_FIELD_AT_EVERY_STEP = """
[output]
fields = ["displacement", "stress", "von_mises", "temperature", "material"]
every = 1
"""


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run of the shipped recurved cell (about 5 s), writing every field at every
    step."""
    base = tmp_path_factory.mktemp("views")
    case = base / "recurved-2d.toml"
    case.write_text((CASES / "recurved-2d.toml").read_text() + EVERY_FIELD_AT_EVERY_STEP)
    out = base / "recurved-2d"
    assert main(["run", str(case), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def written(result):
    """What the solver wrote: the final time step of each field and the tags, from fields.h5,
    with the time values and dataset names from fields.xdmf."""
    domain = ET.parse(result / "fields.xdmf").getroot().find("Domain")
    times, datasets = {}, {}
    for series in domain.findall("Grid[@GridType='Collection']"):
        steps = series.findall("Grid")
        times[series.get("Name")] = [float(step.find("Time").get("Value")) for step in steps]
        datasets[series.get("Name")] = steps[-1].find("Attribute/DataItem").text.split(":")[1]
    with h5py.File(result / "fields.h5") as h5:
        fields = {name: h5[path][()] for name, path in datasets.items()}
        tags = {name: (h5[f"MeshTags/{name}/topology"][()],
                       h5[f"MeshTags/{name}/Values"][()].ravel())
                for name in ("materials", "boundaries")}
        geometry, topology = h5["Mesh/mesh/geometry"][()], h5["Mesh/mesh/topology"][()]
    return {"times": times, "fields": fields, "tags": tags, "geometry": geometry,
            "topology": topology, "summary": json.loads((result / "summary.json").read_text())}


@pytest.fixture(scope="module")
def paraview_saw(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("paraview")
    tags = views.write_tags_xdmf(result / "fields.xdmf", out / "tags.xdmf")
    (out / "what_paraview_sees.py").write_text(INSPECT)
    views.run_pvbatch(out / "what_paraview_sees.py", result / "fields.xdmf", tags,
                      views.PVSCRIPTS, out)
    seen = json.loads((out / "seen.json").read_text())
    with np.load(out / "arrays.npz") as arrays:
        seen["arrays"] = dict(arrays)
    seen["picture"] = out / "von_mises.png"
    return seen


def close_in_float32(paraview, solver):
    """ParaView's XDMF reader gives float32: equal to its rounding of the largest value."""
    solver = np.asarray(solver, dtype=float)
    scale = max(np.abs(solver).max(), 1e-300)
    return np.allclose(np.asarray(paraview, dtype=float), solver, rtol=0, atol=2e-7 * scale)


def as_3d(points):
    return np.column_stack([points, np.zeros((len(points), 3 - points.shape[1]))])


def test_paraview_steps_through_the_schedule_in_seconds(result, written, paraview_saw):
    history = pd.read_csv(result / "history.csv")
    for name, times in written["times"].items():
        assert times == pytest.approx(paraview_saw["times"], rel=1e-12), name
    assert paraview_saw["times"] == pytest.approx(history["time_s"].to_list(), rel=1e-12)
    assert paraview_saw["times"][-1] == written["summary"]["schedule"]["duration"]


def test_paraview_reads_each_field_on_the_whole_mesh(written, paraview_saw):
    expected = {"u": "POINTS", "T": "CELLS", "sigma": "CELLS", "von_mises": "CELLS",
                "material": "CELLS"}
    blocks = paraview_saw["fields"]["blocks"]
    assert sorted(a for block in blocks for a in block["arrays"]) == sorted(
        f"{where}/{name}" for name, where in expected.items())
    points, cells = len(written["geometry"]), len(written["topology"])
    assert cells == written["summary"]["cells"]
    for index, block in enumerate(blocks):
        assert (block["points"], block["cells"]) == (points, cells)
        key = f"fields/{index}"
        assert close_in_float32(paraview_saw["arrays"][f"{key}/points"], as_3d(written["geometry"]))
        assert np.array_equal(paraview_saw["arrays"][f"{key}/cells"], written["topology"].ravel())
        for array in block["arrays"]:
            name = array.split("/")[1]
            values = paraview_saw["arrays"][f"{key}/{array}"]
            solver = written["fields"][name]
            assert values.size == solver.size, name
            assert close_in_float32(values.reshape(solver.shape), solver), name


def test_paraview_reports_the_value_ranges_the_solver_wrote(written, paraview_saw):
    ranges = paraview_saw["fields"]["ranges"]
    for name, values in written["fields"].items():
        where = "POINTS" if name == "u" else "CELLS"
        columns = values.reshape(len(values), -1)
        expected = np.column_stack([columns.min(axis=0), columns.max(axis=0)])
        assert close_in_float32(ranges[f"{where}/{name}"], expected), name
    # 358 MPa for this case, as printed by `sinter run`
    von_mises = ranges["CELLS/von_mises"][0][1]
    assert von_mises == pytest.approx(written["summary"]["final"]["max_von_mises"], rel=1e-6)
    temperature = ranges["CELLS/T"][0]
    assert temperature == pytest.approx([written["summary"]["final"]["temperature"]] * 2,
                                        rel=1e-6)


def test_paraview_reads_the_material_and_facet_tags(written, paraview_saw):
    """From views/tags.xdmf: ParaView leaves the tags in fields.xdmf out (see docs/outputs.md)."""
    blocks = paraview_saw["tags"]["blocks"]
    by_array = {array: index for index, block in enumerate(blocks) for array in block["arrays"]}
    assert set(by_array) == {"CELLS/materials", "CELLS/boundaries"}
    for name, (topology, values) in written["tags"].items():
        key = f"tags/{by_array[f'CELLS/{name}']}"
        assert blocks[by_array[f"CELLS/{name}"]]["cells"] == len(values)
        assert np.array_equal(paraview_saw["arrays"][f"{key}/cells"], topology.ravel())
        assert np.array_equal(paraview_saw["arrays"][f"{key}/CELLS/{name}"], values)
    materials = paraview_saw["arrays"][f"tags/{by_array['CELLS/materials']}/CELLS/materials"]
    assert {str(int(tag)) for tag in np.unique(materials)} == set(written["summary"]["materials"])


def test_sinter_views_grid_has_every_field_and_the_materials(written, paraview_saw):
    combined = paraview_saw["combined"]["blocks"][0]
    assert sorted(combined["arrays"]) == ["CELLS/T", "CELLS/material", "CELLS/materials",
                                          "CELLS/sigma", "CELLS/von_mises", "POINTS/u"]
    assert (combined["points"], combined["cells"]) == (len(written["geometry"]),
                                                       len(written["topology"]))
    for name, values in written["fields"].items():
        where = "POINTS" if name == "u" else "CELLS"
        seen = paraview_saw["arrays"][f"combined/0/{where}/{name}"]
        assert close_in_float32(seen.reshape(values.shape), values), name
    assert np.array_equal(paraview_saw["arrays"]["combined/0/CELLS/materials"],
                          written["tags"]["materials"][1])


def assert_picture(path, coloured=0.05, min_size=(400, 300)):
    """A PNG of at least `min_size` pixels, not blank: its pixels vary, and at least the
    fraction `coloured` of them has colour (a field drawn in colour, not only black text)."""
    pixels = imread(path)[..., :3]
    assert pixels.shape[1] >= min_size[0] and pixels.shape[0] >= min_size[1], pixels.shape
    assert pixels.std() > 0.05, f"{path}: nearly uniform"
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation > 0.3).mean() > coloured, f"{path}: hardly any colour"


def test_paraview_renders_the_stress(paraview_saw):
    assert_picture(paraview_saw["picture"])


def test_sinter_view_draws_the_pictures_and_a_state(result):
    assert main(["view", str(result), "-q"]) == 0
    pictures = result / "views"
    assert_picture(pictures / "von_mises.png")
    assert_picture(pictures / "closeup.png", coloured=0.5)
    assert_picture(pictures / "interface_tractions.png", coloured=0.005)  # lines
    state = ET.parse(pictures / "fields.pvsm").getroot()
    file_names = {element.get("value") for element in state.iter("Element")
                  if element.get("value", "").endswith(".xdmf")}
    # relative to the run directory, so that the result can move
    assert file_names == {"./fields.xdmf", "./views/tags.xdmf"}
    assert str(result) not in (pictures / "fields.pvsm").read_text()


def test_the_state_file_opens_in_paraview(result, written, tmp_path):
    """From the run directory, after the result has moved: its paths are relative."""
    if not (result / "views" / "fields.pvsm").exists():
        assert main(["view", str(result), "-q"]) == 0
    moved = tmp_path / "moved"
    shutil.copytree(result, moved)
    (tmp_path / "load_state.py").write_text(LOAD_STATE)
    loaded = json.loads(views.run_pvbatch(tmp_path / "load_state.py", "views/fields.pvsm",
                                          cwd=moved).strip().splitlines()[-1])
    assert loaded["end"] == written["summary"]["schedule"]["duration"]
    von_mises = written["fields"]["von_mises"]
    assert close_in_float32(loaded["von_mises"], [von_mises.min(), von_mises.max()])
    outlines = {f"{name} outline" for name in written["summary"]["materials"].values()}
    assert {"fields.xdmf", "tags.xdmf", "all fields on one mesh", *outlines} <= set(
        loaded["sources"])
    # The pictures: the stress at the nodes (smooth), on the undeformed mesh in micrometres
    # (the foil's surface at y = 0), within the range of the cell values
    assert "von Mises [MPa]" in loaded["drawn_points"]
    assert "von Mises [MPa]" not in loaded["drawn_cells"]
    assert close_in_float32(loaded["drawn_bounds"], [1e6 * b for b in loaded["bounds"]])
    low, high = loaded["drawn_range"]
    assert von_mises.min() / 1e6 - 1e-3 <= low < high <= von_mises.max() / 1e6 + 1e-3


def test_view_of_a_run_without_the_fields_says_so(result, tmp_path, caplog):
    """A run whose [output] left out von Mises, and one that wrote no fields.xdmf: `sinter
    view` draws the interface tractions, and names what is missing instead of the ParaView
    pictures."""
    case = tmp_path / "recurved-2d.toml"
    case.write_text((CASES / "recurved-2d.toml").read_text()
                    + '\n[solver]\ntemperature_increment = "375 K"\n'
                    '[output]\nfields = ["displacement", "stress"]\n')
    assert main(["run", str(case), "--out", str(tmp_path / "no-von-mises"), "-q"]) == 0
    no_xdmf = tmp_path / "no-xdmf"
    shutil.copytree(result, no_xdmf, ignore=shutil.ignore_patterns("views", "fields.*"))
    for run, missing in ((tmp_path / "no-von-mises", 'no von_mises (add "von_mises" to '
                                                     "[output] fields)"),
                         (no_xdmf, "it wrote no fields.xdmf")):
        caplog.clear()
        assert main(["view", str(run)]) == 0
        assert sorted(p.name for p in (run / "views").iterdir()) == ["interface_tractions.png"]
        assert any(missing in record.getMessage() for record in caplog.records), missing


def test_view_needs_a_result(tmp_path, capsys):
    assert main(["view", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sinter: error: ") and "no summary.json" in error
    assert len(error.splitlines()) == 1


def test_view_needs_paraview(result, monkeypatch, capsys):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["view", str(result)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sinter: error: ") and "pvbatch" in error
    assert len(error.splitlines()) == 1
