"""Fields of mesh data: cell-wise (DG0) values per material."""

from dolfinx import fem


def cellwise_field(emesh, values_by_material: dict, name: str) -> fem.Function:
    """A DG0 field holding, in every cell, the value of the cell's material."""
    field = fem.Function(fem.functionspace(emesh.mesh, ("DG", 0)), name=name)
    fill_cellwise(field, emesh, values_by_material)
    return field


def fill_cellwise(field: fem.Function, emesh, values_by_material: dict, default=None):
    """Set a DG0 field to the value of each cell's material (`default` for materials not
    named; None: every material must be named)."""
    space = field.function_space
    tags = emesh.cell_tags
    for tag, material in emesh.geometry.cell_materials.items():
        cells = tags.indices[tags.values == tag]
        value = values_by_material[material] if default is None else \
            values_by_material.get(material, default)
        field.x.array[space.dofmap.list[cells, 0]] = value
    field.x.scatter_forward()
