"""The geometry builders: physical groups, areas and volumes of the meshes, validation errors."""

import gmsh
import numpy as np
import pytest

from meshes import GeometryError, RecurvedProfile, build_layers, build_recurved_2d

from conftest import in_metres

MICROMETRE = 1e-6

RECURVED_UM = {
    "pitch": 10.0,
    "foil_thickness": 5.0,
    "neck_width": 2.0,
    "head_width": 5.0,
    "height": 6.0,
    "neck_height": 2.0,
    "fillet_radius": 0.5,
    "mix_thickness": 10.0,
    "mesh_size": 1.0,
    "interface_mesh_size": 0.25,
}




def node_coordinates() -> tuple[dict[int, int], np.ndarray]:
    node_tags, coordinates, _ = gmsh.model.mesh.getNodes()
    index_of_tag = {int(tag): index for index, tag in enumerate(node_tags)}
    return index_of_tag, coordinates.reshape(-1, 3)


def mesh_measure(dim: int, physical_tag: int) -> float:
    """Total length, area or volume (model units) of the linear elements of a physical group."""
    index_of_tag, coordinates = node_coordinates()
    total = 0.0
    for entity in gmsh.model.getEntitiesForPhysicalGroup(dim, physical_tag):
        _, _, element_nodes = gmsh.model.mesh.getElements(dim, entity)
        (nodes,) = element_nodes  # one element type: linear simplices
        corners = coordinates[[index_of_tag[int(tag)] for tag in nodes]].reshape(-1, dim + 1, 3)
        edges = corners[:, 1:, :] - corners[:, :1, :]
        if dim == 1:
            total += np.linalg.norm(edges[:, 0], axis=1).sum()
        elif dim == 2:
            total += 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1).sum()
        else:
            total += abs(np.linalg.det(edges)).sum() / 6
    return total


def physical_names(dim: int) -> dict[str, int]:
    return {
        gmsh.model.getPhysicalName(dim, tag): tag for _, tag in gmsh.model.getPhysicalGroups(dim)
    }


def test_layers_2d_groups_areas_and_mid_line(gmsh_model):
    thicknesses_um = [4.0, 6.0, 2.0]
    built = build_layers(
        40 * MICROMETRE,
        [t * MICROMETRE for t in thicknesses_um],
        ["copper", "polyimide", "silicon"],
        mesh_size=1 * MICROMETRE,
    )
    assert built.dim == 2 and built.length_scale == MICROMETRE
    assert built.cell_groups == {"layer0_copper": 1, "layer1_polyimide": 2, "layer2_silicon": 3}
    assert built.cell_materials == {1: "copper", 2: "polyimide", 3: "silicon"}
    assert physical_names(2) == built.cell_groups
    assert physical_names(1) == built.facet_groups
    assert set(built.facet_groups) == {
        "bottom",
        "top",
        "left",
        "right",
        "interface_0_1",
        "interface_1_2",
    }
    assert built.interfaces == {
        "interface_0_1": (built.facet_groups["interface_0_1"], 1, 2),
        "interface_1_2": (built.facet_groups["interface_1_2"], 2, 3),
    }
    for name, thickness in zip(built.cell_groups, thicknesses_um, strict=True):
        assert mesh_measure(2, built.cell_groups[name]) == pytest.approx(40 * thickness)
    for name in ("interface_0_1", "interface_1_2", "bottom", "top"):
        assert mesh_measure(1, built.facet_groups[name]) == pytest.approx(40.0)
    assert mesh_measure(1, built.facet_groups["left"]) == pytest.approx(12.0)
    assert built.metrics["total_thickness"] == pytest.approx(12 * MICROMETRE)
    assert built.metrics["interface_length"] == pytest.approx(40 * MICROMETRE)
    assert 0.5 < built.metrics["element_quality_min"] <= built.metrics["element_quality_mean"] <= 1

    _, coordinates = node_coordinates()
    on_mid_line = coordinates[np.isclose(coordinates[:, 0], 20.0)]
    # Vertices on x = L/2 at every interface and through the whole thickness.
    assert np.isclose(on_mid_line[:, 1], 0.0).any() and np.isclose(on_mid_line[:, 1], 12.0).any()
    assert len(on_mid_line) >= 12


def test_layers_3d_groups_and_volumes(gmsh_model):
    built = build_layers(
        40 * MICROMETRE,
        [4 * MICROMETRE, 6 * MICROMETRE],
        ["copper", "polyimide"],
        mesh_size=4 * MICROMETRE,
        dim=3,
        width=20 * MICROMETRE,
    )
    assert built.dim == 3
    assert physical_names(3) == {"layer0_copper": 1, "layer1_polyimide": 2}
    assert set(physical_names(2)) == {
        "bottom",
        "top",
        "left",
        "right",
        "front",
        "back",
        "interface_0_1",
    }
    assert mesh_measure(3, 1) == pytest.approx(40 * 20 * 4)
    assert mesh_measure(3, 2) == pytest.approx(40 * 20 * 6)
    assert mesh_measure(2, built.facet_groups["interface_0_1"]) == pytest.approx(800.0)
    assert mesh_measure(2, built.facet_groups["front"]) == pytest.approx(400.0)
    assert built.metrics["interface_area"] == pytest.approx(800 * MICROMETRE**2)

    _, coordinates = node_coordinates()
    mid_x = np.isclose(coordinates[:, 0], 20.0)
    mid_y = np.isclose(coordinates[:, 1], 10.0)
    assert np.isclose(coordinates[mid_x & mid_y, 2], 10.0).any()
    assert np.isclose(coordinates[mid_x & mid_y, 2], 0.0).any()


def test_recurved_groups_areas_and_metrics(gmsh_model):
    built = build_recurved_2d(**in_metres(RECURVED_UM))
    assert built.cell_groups == {"copper": 1, "mix": 2}
    assert built.cell_materials == {1: "copper", 2: "mix"}
    assert physical_names(2) == built.cell_groups
    assert physical_names(1) == built.facet_groups
    assert set(built.facet_groups) == {"bottom", "top", "left", "right", "interface_copper_mix"}
    assert built.interfaces == {
        "interface_copper_mix": (built.facet_groups["interface_copper_mix"], 1, 2)
    }

    profile = RecurvedProfile(
        neck_width=2.0, head_width=5.0, height=6.0, neck_height=2.0, fillet_radius=0.5
    )
    heights = np.linspace(0.0, 6.0, 200001)
    half_widths = profile.half_width(heights)
    projection_area = 2 * np.sum((half_widths[1:] + half_widths[:-1]) / 2 * np.diff(heights))
    assert profile.area() == pytest.approx(projection_area, rel=1e-4)
    copper_area = 10 * 5 + projection_area
    assert mesh_measure(2, 1) == pytest.approx(copper_area, rel=0.01)
    assert mesh_measure(2, 2) == pytest.approx(10 * 10 - projection_area, rel=0.01)

    metrics = built.metrics
    assert metrics["recurved"] is True
    assert 0 < metrics["element_quality_min"] < metrics["element_quality_mean"] <= 1
    assert metrics["neck_width_measured"] == pytest.approx(2 * MICROMETRE, rel=0.02)
    assert metrics["head_width_measured"] == pytest.approx(5 * MICROMETRE, rel=0.02)
    assert metrics["projected_length"] == pytest.approx(10 * MICROMETRE)
    interface_length_um = mesh_measure(1, built.facet_groups["interface_copper_mix"])
    assert metrics["interface_length"] == pytest.approx(interface_length_um * MICROMETRE, rel=0.01)
    # Longer than the flat surface plus the two neck sides and the head's span.
    assert metrics["interface_length"] > (10 + 2 * 4 + 5) * MICROMETRE
    # The pocket under the head: head span times widest height, minus the projection there.
    assert 0 < metrics["undercut_area"] < 5 * profile.widest_height * MICROMETRE**2
    # Left and right are both materials: the foil and the mix side.
    assert len(gmsh.model.getEntitiesForPhysicalGroup(1, built.facet_groups["left"])) == 2


def test_recurved_sides_are_periodic(gmsh_model):
    built = build_recurved_2d(**in_metres(RECURVED_UM))
    index_of_tag, coordinates = node_coordinates()

    def side_heights(name):
        heights = set()
        for curve in gmsh.model.getEntitiesForPhysicalGroup(1, built.facet_groups[name]):
            node_tags, _, _ = gmsh.model.mesh.getNodes(1, curve, includeBoundary=True)
            heights.update(round(coordinates[index_of_tag[int(t)], 1], 9) for t in node_tags)
        return sorted(heights)

    assert side_heights("left") == side_heights("right")


@pytest.mark.parametrize(
    ("changes_um", "named"),
    [
        ({"head_width": 1.5}, ["neck_width", "head_width"]),
        ({"head_width": 12.0}, ["head_width", "pitch"]),
        (
            {"neck_width": 7.0, "head_width": 8.0, "fillet_radius": 1.8},
            ["neck_width", "fillet_radius", "pitch"],
        ),
        ({"height": 11.0}, ["height", "mix_thickness"]),
        ({"fillet_radius": 2.5}, ["fillet_radius", "neck_height"]),
        ({"neck_height": 7.0}, ["neck_height", "height"]),
        ({"interface_mesh_size": 1.5}, ["interface_mesh_size", "mesh_size"]),
        ({"mesh_size": 2.0, "interface_mesh_size": 1.5}, ["interface_mesh_size", "neck_width"]),
        ({"foil_thickness": 0.0}, ["foil_thickness"]),
    ],
)
def test_recurved_rejects_invalid_parameters(changes_um, named):
    # Validation comes before any gmsh call: no gmsh session is needed here.
    with pytest.raises(GeometryError) as raised:
        build_recurved_2d(**in_metres(RECURVED_UM, **changes_um))
    message = str(raised.value)
    assert "\n" not in message and message.startswith("geometry: ")
    for name in named:
        assert name in message
    assert " um" in message


def test_layers_reject_invalid_parameters():
    with pytest.raises(GeometryError, match=r"thicknesses\[1\] \(0 um\)"):
        build_layers(40e-6, [4e-6, 0.0], ["copper", "polyimide"], 1e-6)
    with pytest.raises(GeometryError, match="materials .* thicknesses"):
        build_layers(40e-6, [4e-6], ["copper", "polyimide"], 1e-6)
    with pytest.raises(GeometryError, match="width is required"):
        build_layers(40e-6, [4e-6], ["copper"], 1e-6, dim=3)


def test_gmsh_failure_becomes_one_line_geometry_error(gmsh_model):
    # Without a model the first gmsh call fails: the message must name the cell, not trace back.
    gmsh.model.remove()
    gmsh.finalize()
    try:
        with pytest.raises(GeometryError) as raised:
            build_recurved_2d(**in_metres(RECURVED_UM))
    finally:
        gmsh.initialize()
    message = str(raised.value)
    assert message.startswith("could not mesh the recurved cell (pitch=10 um")
    assert "\n" not in message


def test_recurved_outline_follows_the_profile_to_the_feet(gmsh_model):
    # An interpolating spline can run flat along the foil or loop near a foot (seen with end
    # tangents): a sliver of mix there gave a spurious shear peak. The built curve must stay
    # on the closed-form outline everywhere.
    built = build_recurved_2d(**in_metres(RECURVED_UM))
    profile = RecurvedProfile(
        neck_width=2.0, head_width=5.0, height=6.0, neck_height=2.0, fillet_radius=0.5
    )
    right_x, right_y = profile.right_outline(2001)
    reference = np.column_stack([np.concatenate([right_x, -right_x]), np.tile(right_y, 2)])
    interface = built.facet_groups["interface_copper_mix"]
    (outline,) = [
        curve
        for curve in gmsh.model.getEntitiesForPhysicalGroup(1, interface)
        if gmsh.model.getType(1, curve) != "Line"
    ]
    low, high = gmsh.model.getParametrizationBounds(1, outline)
    points = np.reshape(
        gmsh.model.getValue(1, outline, np.linspace(low[0], high[0], 1201)), (-1, 3)
    )
    centred = np.column_stack([points[:, 0] - 5.0, points[:, 1]])
    distances = np.linalg.norm(centred[:, None, :] - reference[None, :, :], axis=2).min(axis=1)
    assert distances.max() < 0.01  # um, against outline points about 0.006 um apart
    assert points[:, 1].min() > -1e-6
