"""`kind = "mesh"` (meshes/imported.py, solver/geometry/kinds/user_mesh.py): a shipped
geometry's mesh written by another tool (meshio: Abaqus .inp with cell sets, VTU with
integer cell data; Gmsh's .msh) gives the native build's summary, on 1 and 2 ranks,
through the schedule, the pull-off and the swelling stage; and what is wrong with a mesh
file is one line naming the key."""

import re
from pathlib import Path

import gmsh
import meshio
import numpy as np
import pytest
from mpi4py import MPI

from meshes.imported import build_from_file
from solver.case import load_case, load_case_text
from solver.case.units import to_si
from solver.errors import CaseError, GeometryError
from solver.geometry.mesh import build_geometry, curve_elements
from solver.stages.pipeline import run_case, run_pulloff

from conftest import ABSOLUTE_FLOOR, CASES, quick_case, reference_numbers

# The same mesh, numbered otherwise (the file's order) and so partitioned otherwise on 2
# ranks. Measured (largest relative difference of any number of the summary): recurved-2d
# 3.2e-12 on 1 rank, 2.6e-9 on 2 (the schedule's Krylov rtol 1e-11); the pull-off of
# pulloff-flat-2d 9.2e-12; second-order triangles 2e-12; tetrahedra (recurved-3d, coarse)
# 8.1e-10 on 1 rank, 1.9e-9 on 2.
SAME_MESH = 1e-8


def _write_with_meshio(native_case, directory: Path) -> dict[str, str]:
    """The native case's mesh built by Gmsh (second-order where the case's
    solver.geometry_degree is 2), written by meshio as an Abaqus .inp (the cells in cell
    sets named by the material in capitals) and a VTU (the material's tag as integer cell
    data "material"): the cells alone, the boundaries are the bounding box's faces. And
    Gmsh's own .msh, its physical groups named in the case (by name or tag; the top and
    the right face from its facets). Each file's [geometry] table for a case file."""
    dim = native_case.case.dim
    gmsh.initialize()
    gmsh.option.setNumber("General.Terminal", 0)
    try:
        gmsh.model.add("native")
        built = build_geometry(native_case)
        if native_case.solver.geometry_degree == 2:
            curve_elements(built)
        gmsh.write(str(directory / "native.msh"))
    finally:
        gmsh.finalize()
    native = meshio.read(directory / "native.msh")
    (cell_type,) = {block.type for block in native.cells if block.dim == dim}
    blocks = [index for index, block in enumerate(native.cells) if block.type == cell_type]
    cells = [(cell_type, np.concatenate([native.cells[index].data for index in blocks]))]
    tags = np.concatenate([native.cell_data["gmsh:physical"][index] for index in blocks])
    points = native.points[:, :dim]
    tags_of = {name: [tag for tag, other in built.cell_materials.items() if other == name]
               for name in dict.fromkeys(built.cell_materials.values())}
    sets = {name.upper(): [np.flatnonzero(np.isin(tags, group))]
            for name, group in tags_of.items()}
    meshio.Mesh(points, cells, cell_sets=sets).write(directory / "cell.inp")
    meshio.Mesh(points, cells, cell_data={"material": [tags.astype(np.int32)]}).write(
        directory / "cell.vtu")
    by_set = ", ".join(f'{name} = "{name.upper()}"' for name in tags_of)
    by_tag = ", ".join(f"{name} = {group}" for name, group in tags_of.items())
    # the native interfaces, named in the VTU's case (the .inp's finds those of the
    # touching materials)
    pairs = ", ".join(f'["{built.cell_materials[lower]}", "{built.cell_materials[upper]}"]'
                      for _, lower, upper in built.interfaces.values())
    by_group = ", ".join(f'{built.cell_materials[tag]} = ' + (f'"{name}"' if index % 2 == 0
                                                              else str(tag))
                         for index, (name, tag) in enumerate(built.cell_groups.items()))
    facets = f'top = "top", right = {built.facet_groups["right"]}'
    return {"msh": f'file = "native.msh"\nlength_unit = "um"\nmaterials = {{ {by_group} }}\n'
                   f"boundaries = {{ {facets} }}\n",
            "inp": f'file = "cell.inp"\nlength_unit = "um"\nmaterials = {{ {by_set} }}\n',
            "vtu": f'file = "cell.vtu"\nlength_unit = "um"\nmaterials = {{ {by_tag} }}\n'
                   f"interfaces = [{pairs}]\n"}


def _mesh_case(native_file: Path, geometry: str, directory: Path) -> Path:
    """The native case file with its [geometry] table replaced by the mesh file's."""
    text = native_file.read_text()
    text = re.sub(r"\[geometry\].*?(?=^\[)", f'[geometry]\nkind = "mesh"\n{geometry}\n',
                  text, count=1, flags=re.S | re.M)
    path = directory / f"{native_file.stem}-{geometry.split('.')[1][:3]}.toml"
    path.write_text(text)
    return path


def _run(case, out, comm):
    if case.pulloff is not None:
        return run_pulloff(case, str(out), comm=comm)
    return run_case(case, str(out), comm=comm, progress=False)


def _differences(native: dict, imported: dict) -> tuple[list[str], float]:
    """The keys only one summary has, and the largest relative difference of the others
    (those zero up to roundoff to their conftest.ABSOLUTE_FLOOR); the geometry's own
    measures left out (the builders measure their exact curves, a file
    has only its facets: the recurved interface is 0.1% longer than its polyline)."""
    numbers = [{key: value for key, value in reference_numbers(summary).items()
                if not key.startswith("geometry.")} for summary in (native, imported)]
    differing = sorted(set(numbers[0]) ^ set(numbers[1]))
    largest = 0.0
    for key, value in numbers[0].items():
        other = numbers[1].get(key)
        floor = ABSOLUTE_FLOOR.get(key.rsplit(".", 1)[-1])
        if floor is not None and isinstance(other, float) and abs(value - other) <= floor:
            continue  # zero up to roundoff
        if isinstance(value, float) and isinstance(other, float):
            largest = max(largest, abs(value - other) / max(abs(value), abs(other), 1e-300))
        elif value != other:
            differing.append(key)
    return differing, largest


def _same_summaries(native_file: Path, base: Path, comm, formats=("msh", "inp", "vtu")):
    geometries = comm.bcast(_write_with_meshio(load_case(native_file), base)
                            if comm.rank == 0 else None)
    native = _run(quick_case(native_file), base / "native", comm)
    for name in formats:
        case = quick_case(_mesh_case(native_file, geometries[name], base))
        imported = _run(case, base / name, comm)
        assert imported["geometry"]["kind"] == "mesh"
        # the materials' and boundaries' tags and names are the builder's (the pull-off's
        # summary has none)
        assert [imported.get(key) for key in ("materials", "boundaries")] == [
            native.get(key) for key in ("materials", "boundaries")]
        differing, largest = _differences(native, imported)
        assert differing == [] and largest < SAME_MESH, (name, differing, largest)


@pytest.mark.parametrize("native, formats", [
    ("recurved-2d.toml", ("msh", "inp", "vtu")), ("pulloff-flat-2d.toml", ("msh",))])
def test_a_mesh_written_by_meshio_gives_the_native_summary(native, formats, tmp_path):
    """The process stage (recurved-2d) on .msh, .inp and .vtu; the pull-off
    (pulloff-flat-2d) on the .msh with its named top and right faces."""
    _same_summaries(CASES / native, tmp_path, MPI.COMM_WORLD, formats)


def test_the_swelling_stage_on_a_mesh_file_gives_the_native_summary(tmp_path):
    """Swelling particles in a binder on the foil (swelling-particles-2d, lithiated to SOC
    0.3 in 3 increments): three materials, the one interface the native build has
    (copper/polyimide) named in the case."""
    shipped = (CASES / "swelling-particles-2d.toml").read_text()
    path = "path = [ { soc = 0.5, increments = 20 }, { soc = 0.2, increments = 6 } ]"
    assert path in shipped
    native_file = tmp_path / "swelling-particles-2d.toml"
    native_file.write_text(shipped.replace(path, "path = [ { soc = 0.3, increments = 3 } ]"))
    _same_summaries(native_file, tmp_path, MPI.COMM_WORLD, formats=("vtu",))


@pytest.mark.parametrize("native, change, file_format", [
    ("recurved-2d.toml", ("[schedule]", "[solver]\ngeometry_degree = 2\n\n[schedule]"), "vtu"),
    ("recurved-3d.toml", ('mesh_size = "1.0 um"\ninterface_mesh_size = "0.12 um"',
                          'mesh_size = "2 um"\ninterface_mesh_size = "0.5 um"'), "inp"),
])
def test_second_order_triangles_and_tetrahedra_give_the_native_summary(
        native, change, file_format, tmp_path):
    """Curved (second-order) triangles, and tetrahedra (recurved-3d on a coarse mesh)."""
    text = (CASES / native).read_text()
    assert change[0] in text
    native_file = tmp_path / native
    native_file.write_text(text.replace(change[0], change[1], 1))
    _same_summaries(native_file, tmp_path, MPI.COMM_WORLD, formats=(file_format,))


@pytest.mark.mpi
def test_a_mesh_written_by_meshio_gives_the_native_summary_on_two_ranks(tmp_path_factory):
    comm = MPI.COMM_WORLD
    base = Path(comm.bcast(str(tmp_path_factory.mktemp("user-mesh")) if comm.rank == 0
                           else None))
    _same_summaries(CASES / "recurved-2d.toml", base, comm, formats=("inp",))


# --- what the file and the case check -----------------------------------------------------


def _two_layers(nx=4, ny=4):
    """A 4 x 4 um square, foil below y = 0 and mix above, in triangles: (points, triangles,
    the material index of each triangle)."""
    x, y = np.meshgrid(np.linspace(0, 4, nx + 1), np.linspace(-2, 2, ny + 1))
    points = np.column_stack([x.ravel(), y.ravel()])
    node = np.arange((nx + 1) * (ny + 1)).reshape(ny + 1, nx + 1)
    corners = np.column_stack([node[:-1, :-1].ravel(), node[:-1, 1:].ravel(),
                               node[1:, 1:].ravel(), node[1:, :-1].ravel()])
    triangles = np.concatenate([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]])
    below = points[triangles].mean(axis=1)[:, 1] < 0
    return points, triangles, np.where(below, 0, 1)


def _write(path, points, cells, cell_sets=None, point_sets=None):
    meshio.Mesh(points, cells, cell_sets=cell_sets or {}, point_sets=point_sets or {}).write(path)
    return path


def _sets(material):
    return {"FOIL": [np.flatnonzero(material == 0)], "MIX": [np.flatnonzero(material == 1)]}


MATERIALS = {"copper": ["FOIL"], "mix": ["MIX"]}


def _build(path, materials=MATERIALS, boundaries=None, scale=1e-6, dim=2, interfaces=None):
    return build_from_file(path, dim, scale, materials, boundaries or {}, interfaces)


@pytest.mark.usefixtures("gmsh_model")
def test_the_bounding_box_a_node_set_and_facet_cells_give_the_same_boundaries(tmp_path):
    points, triangles, material = _two_layers()
    top = np.flatnonzero(np.isclose(points[:, 1], 2.0))
    path = _write(tmp_path / "cell.inp", points, [("triangle", triangles)], _sets(material),
                  {"TOP_NODES": top})
    built = _build(path, boundaries={"top": ["TOP_NODES"]})
    assert list(built.facet_groups) == ["bottom", "top", "left", "right",
                                        "interface_copper_mix"]
    assert built.interfaces == {"interface_copper_mix": (5, 1, 2)}
    assert built.metrics["interface_length"] == pytest.approx(4e-6)
    assert built.metrics["projected_length"] == pytest.approx(4e-6)
    _, _, top_nodes = gmsh.model.mesh.getElements(1, 2)
    assert sorted(set(np.concatenate(top_nodes))) == sorted(top + 1)
    # a facet cell set in a VTU-like file: the top's segments as line cells
    gmsh.model.remove()
    gmsh.model.add("lines")
    segments = np.column_stack([top[:-1], top[1:]])
    path = _write(tmp_path / "lines.inp", points, [("triangle", triangles), ("line", segments)],
                  {**{k: v + [np.empty(0, int)] for k, v in _sets(material).items()},
                   "TOP": [np.empty(0, int), np.arange(len(segments))]})
    _build(path, boundaries={"top": ["TOP"]})
    _, _, named = gmsh.model.mesh.getElements(1, 2)
    assert sorted(set(np.concatenate(named))) == sorted(top + 1)


@pytest.mark.usefixtures("gmsh_model")
def test_the_interfaces_are_between_touching_materials_or_those_named(tmp_path):
    """Three bands: a touches b, b touches c, a and c do not."""
    points, triangles, _ = _two_layers()
    height = points[triangles].mean(axis=1)[:, 1]
    bands = {"A": [np.flatnonzero(height < -1)], "B": [np.flatnonzero(abs(height) < 1)],
             "C": [np.flatnonzero(height > 1)]}
    path = _write(tmp_path / "bands.inp", points, [("triangle", triangles)], bands)
    materials = {"a": ["A"], "b": ["B"], "c": ["C"]}
    assert _build(path, materials).interfaces == {"interface_a_b": (5, 1, 2),
                                                  "interface_b_c": (6, 2, 3)}
    gmsh.model.remove()
    gmsh.model.add("named")
    assert _build(path, materials, interfaces=[("c", "b")]).interfaces == {
        "interface_c_b": (5, 3, 2)}
    with pytest.raises(GeometryError, match="geometry.interfaces: 'a' and 'c' share no facet"):
        _build(path, materials, interfaces=[("a", "c")])


@pytest.mark.usefixtures("gmsh_model")
@pytest.mark.parametrize("change, message", [
    ("missing", r"geometry\.file: no such mesh file: .*absent\.inp"),
    ("garbage", r"geometry\.file: cannot read .*cell\.msh as a mesh: not a valid \.msh file"),
    ("unknown element", r"geometry\.file: cannot read .*cell\.inp as a mesh: Element type not "
                        r"available: CPE4X"),
    ("unknown set", r"geometry\.materials\.mix: cell\.inp has no cell set 'BINDER'; it has: "
                    r"FOIL, MIX"),
    ("no material", r"geometry\.materials: 16 of the 32 triangle cells of cell\.inp are in "
                    r"none of the groups given; its cell sets: FOIL, MIX"),
    ("two materials", r"geometry\.materials: 16 triangle cells are in both 'copper' and 'mix'"),
    ("quads", r"geometry\.file: cell\.inp holds quad cells; the solver takes triangle or "
              r"triangle6 cells in 2D"),
    ("mixed", r"geometry\.file: cell\.vtu mixes triangle and triangle6 cells; give one cell "
              r"type"),
    ("3D cells", r"geometry\.file: cell\.inp holds tetra cells \(3D\) in a 2D case: set "
                 r"case\.dim"),
    ("metres", r"geometry\.length_unit: the mesh spans 4 m with 1 m per unit of the file; "
               r".*is the unit right\?"),
    ("off the plane", r"geometry\.file: the mesh's points leave the x-y plane"),
    ("unknown tag", r"geometry\.materials\.mix: no 2D cells have material = 7 in cell\.vtu; "
                    r"its values there: 1, 2"),
    ("unknown boundary", r"geometry\.boundaries\.top: cell\.inp has no cell set or node set "
                         r"'TOP'; it has: FOIL, MIX"),
])
def test_what_is_wrong_with_a_mesh_file_is_one_line(tmp_path, change, message):
    points, triangles, material = _two_layers()
    cells, sets = [("triangle", triangles)], _sets(material)
    name, materials, boundaries, scale = "cell.inp", MATERIALS, {}, 1e-6
    if change == "missing":
        name = "absent.inp"
    elif change == "unknown set":
        materials = {"copper": ["FOIL"], "mix": ["BINDER"]}
    elif change == "no material":
        materials = {"copper": ["FOIL"]}
    elif change == "two materials":
        materials = {"copper": ["FOIL", "MIX"], "mix": ["MIX"]}
    elif change == "quads":
        cells = [("quad", np.array([[0, 1, 6, 5]]))]
    elif change == "3D cells":
        cells.append(("tetra", np.array([[0, 1, 5, 6]])))
        sets = {key: value + [np.empty(0, int)] for key, value in sets.items()}
    elif change == "metres":
        scale = 1.0
    elif change == "off the plane":
        points = np.column_stack([points, np.linspace(0, 1, len(points))])
    elif change == "unknown boundary":
        boundaries = {"top": ["TOP"]}
    path = tmp_path / name
    if change == "garbage":
        path = tmp_path / "cell.msh"
        path.write_text("$MeshFormat\nnot a mesh\n")
    elif change == "mixed":
        path = tmp_path / "cell.vtu"
        midpoints = len(points) + np.arange(3)
        meshio.Mesh(np.vstack([points, [[0.5, -2], [0.5, -1.5], [0, -1.5]]]),
                    [("triangle", triangles), ("triangle6", np.array([[0, 1, 6, *midpoints]]))],
                    cell_data={"material": [material + 1, np.array([1])]}).write(path)
        materials = {"copper": [1], "mix": [2]}
    elif change == "unknown tag":
        path = tmp_path / "cell.vtu"
        meshio.Mesh(points, cells, cell_data={"material": [material + 1]}).write(path)
        materials = {"copper": [1], "mix": [7]}
    elif change != "missing":
        _write(path, points, cells, sets)
    if change == "unknown element":
        path.write_text(path.read_text().replace("TYPE=R3D3", "TYPE=CPE4X"))
    with pytest.raises(GeometryError) as raised:
        _build(path, materials, boundaries, scale)
    assert re.fullmatch(message + ".*", str(raised.value)), str(raised.value)
    assert "\n" not in str(raised.value)


GEOMETRY = """[case]
name = "user-mesh"
[geometry]
kind = "mesh"
file = "meshes/cell.inp"
length_unit = {unit}
materials = {{ copper = "FOIL", mix = ["MIX", 2] }}
{extra}
[schedule]
start = "400 degC"
steps = [ {{ to = "25 degC", rate = "5 K/min" }} ]
"""


@pytest.fixture
def mesh_file(tmp_path):
    """The file the case GEOMETRY names (only its presence is checked when loading)."""
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "cell.inp").touch()


@pytest.mark.usefixtures("mesh_file")
@pytest.mark.parametrize("unit, metres", [('"um"', 1e-6), ('"0.5 mm"', 5e-4), ('"m"', 1.0)])
def test_the_length_unit_is_a_unit_or_a_scale(tmp_path, unit, metres):
    case = load_case_text(GEOMETRY.format(unit=unit, extra=""), file=tmp_path / "c.toml")
    assert case.geometry.length_unit == pytest.approx(metres)


@pytest.mark.usefixtures("mesh_file")
@pytest.mark.parametrize("unit, mesh_size", [('"m"', '"0.5 um"'), ('"1 mm"', '"10 nm"')])
def test_the_length_unit_is_no_length_of_the_geometry(tmp_path, unit, mesh_size):
    """The element-count estimate compares mesh sizes with the geometry's lengths: a unit of
    1 m beside a 0.5 um mesh_size would be (2e6)^2 = 4e12 elements over a 1 m geometry."""
    text = GEOMETRY.format(unit=unit, extra=f"mesh_size = {mesh_size}")
    case = load_case_text(text, file=tmp_path / "c.toml")
    assert case.geometry.mesh_size == pytest.approx(to_si(mesh_size.strip('"'), "length"))


@pytest.mark.usefixtures("mesh_file")
def test_the_file_is_relative_to_the_case_file_and_the_first_material_is_the_foil(tmp_path):
    case = load_case_text(GEOMETRY.format(unit='"um"', extra=""), file=tmp_path / "c.toml")
    assert case.geometry.file == str(tmp_path / "meshes" / "cell.inp")
    assert case.geometry.foil_material == "copper"
    assert case.materials_used() == ["copper", "mix"]
    from solver.case.resolved import resolved_toml

    again = load_case_text(resolved_toml(case), file=tmp_path / "elsewhere" / "r.toml")
    assert again.geometry == case.geometry


@pytest.mark.usefixtures("mesh_file")
@pytest.mark.parametrize("unit, extra, key, message", [
    ('"furlong s"', "", "geometry.length_unit", "expected a positive length"),
    ('"um"', 'boundaries = { interface_a_b = "X" }', "geometry.boundaries.interface_a_b",
     "interfaces are the facets between two materials"),
    ('"um"', 'cell_size = "1 um"', "geometry.cell_size", "unknown key"),
    ('"um"', 'interfaces = [["copper", "binder"]]', "geometry.interfaces[0]",
     "'binder' is not in geometry.materials"),
])
def test_the_case_checks_the_mesh_keys(tmp_path, unit, extra, key, message):
    with pytest.raises(CaseError) as raised:
        load_case_text(GEOMETRY.format(unit=unit, extra=extra), file=tmp_path / "c.toml")
    assert raised.value.key == key and message in raised.value.expected


@pytest.mark.usefixtures("mesh_file")
def test_an_unknown_material_is_named(tmp_path):
    text = GEOMETRY.format(unit='"um"', extra="").replace("copper =", "copperr =")
    with pytest.raises(CaseError) as raised:
        load_case_text(text, file=tmp_path / "c.toml")
    assert raised.value.key == "geometry.materials.copperr"
    assert raised.value.expected.startswith("unknown material 'copperr'")


def test_a_missing_mesh_file_is_found_by_the_check(tmp_path):
    with pytest.raises(CaseError) as raised:
        load_case_text(GEOMETRY.format(unit='"um"', extra=""), file=tmp_path / "c.toml")
    assert (raised.value.key, raised.value.expected) == (
        "geometry.file", f"no such mesh file: {tmp_path / 'meshes' / 'cell.inp'}")


def test_a_sweep_over_a_user_mesh_finds_the_file_from_its_own_cases(tmp_path):
    """The sweep writes its cases into out/cases: the mesh file is named by its absolute path
    there, and each case validates."""
    from solver.sweep.plan import load_sweep

    sweep_file = tmp_path / "sweep.toml"
    sweep_file.write_text(f'[sweep]\nbase = "{CASES / "user-mesh-2d.toml"}"\n'
                          '[parameters]\n"schedule.start" = ["350 degC", "400 degC"]\n')
    sweep = load_sweep(sweep_file, tmp_path / "out")
    assert [case.error for case in sweep.cases] == [None, None]
    mesh_file = str((CASES.parent / "meshes" / "user-mesh-2d.inp").resolve())
    assert {case.document["geometry"]["file"] for case in sweep.cases} == {mesh_file}
