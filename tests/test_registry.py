"""The geometry registry: one entry per kind, its traits consistent, and the only place that
knows the kinds' names."""

import dataclasses
import re
from pathlib import Path

import pytest

from solver.case import load_case, load_case_text
from solver.errors import CaseError
from solver.geometry.kind import GeometryKind
from solver.geometry.registry import KINDS, geometry_kind, kind_named

REPO = Path(__file__).resolve().parents[1]
CASES = REPO / "cases"


def test_kinds_are_listed_in_the_order_of_the_docs_and_named_by_their_schema():
    assert [kind.name for kind in KINDS] == [
        "layers", "recurved", "flat", "plain", "rough", "particles", "mesh"]
    for kind in KINDS:
        assert kind_named(kind.name) is kind
        assert kind.schema.model_fields["kind"].annotation.__args__ == (kind.name,)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_every_kind_is_held_in_each_of_its_dimensions(kind: GeometryKind):
    for dim in kind.dims:
        if kind.rigid_body_pins is not None:
            continue
        assert kind.symmetry_planes[dim] and kind.free_faces[dim]
        if len(kind.free_faces[dim]) > 1:
            assert kind.cell_extent is not None
    assert set(kind.pulloff_dims) <= set(kind.dims)


@pytest.mark.parametrize("case, name, traits", [
    ("bilayer-cu-pi.toml", "layers", {"is_layer_stack": True, "pulloff_dims": ()}),
    ("recurved-2d.toml", "recurved", {"is_collector_cell": True, "pulloff_dims": (2, 3),
                                      "closeup": "projection"}),
    ("pulloff-flat-2d.toml", "flat", {"is_collector_cell": True, "is_layer_stack": False}),
    ("particles-2d.toml", "particles", {"is_collector_cell": False, "pulloff_dims": ()}),
])
def test_a_case_asks_its_kind_for_traits(case, name, traits):
    kind = geometry_kind(load_case(CASES / case))
    assert kind.name == name
    for trait, value in traits.items():
        assert getattr(kind, trait) == value


def test_a_kind_built_in_fewer_dimensions_refuses_the_others():
    text = (CASES / "bilayer-cu-pi.toml").read_text()
    case = load_case_text(text)
    flat_only = dataclasses.replace(geometry_kind(case), dims=(2,))
    assert flat_only.dim_problem(case.geometry, 2) is None
    assert flat_only.dim_problem(case.geometry, 3) == (
        "case.dim", "geometry kind 'layers' is built in 2D only")


def test_pulloff_names_the_kinds_it_runs_on(tmp_path):
    from solver.stages.pipeline import run_pulloff

    text = (CASES / "bilayer-cu-pi.toml").read_text() + "\n[pulloff]\n"
    with pytest.raises(CaseError) as raised:
        run_pulloff(load_case_text(text, file="x.toml"), tmp_path / "out")
    assert (raised.value.key, raised.value.expected) == (
        "geometry.kind", "the pull-off test runs on the geometry kinds recurved (2D and "
        "3D), flat (2D and 3D), plain (2D), rough (2D), mesh (2D and 3D), got 2D 'layers'")
    assert not (tmp_path / "out").exists()


def test_no_module_outside_the_registry_compares_kind_names():
    """Code asks a kind's traits; a quoted kind name outside solver/geometry/ is a string
    check of the kind that the next kind would have to find and extend. The `sinter mesh`
    command shares its name with the kind "mesh": the command line's own lines about its
    commands are not kind checks."""
    names = "|".join(kind.name for kind in KINDS)
    quoted = re.compile(rf"""["']({names})["']""")
    command = re.compile(r'add_parser\("mesh"|args\.command == "mesh"')
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in sorted((REPO / "solver").rglob("*.py"))
             if "geometry" not in path.relative_to(REPO / "solver").parts
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if quoted.search(line) and not command.search(line)]
    assert found == []
