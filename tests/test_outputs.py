"""Field output: the VTX file of the stress and the internal variables (stress.bp)."""

import os

import numpy as np
import pytest

from solver.geometry.mesh import build_mesh
from solver.io.output import FieldWriter
from solver.stages.process import make_problem

from conftest import layers_case

PLASTIC_COPPER = """
[materials.copper]
behaviour = "plastic"
[materials.polyimide]
behaviour = "viscoelastic"
"""


def read_vtx(path, names):
    """{name: [array per step]} read back with the ADIOS2 Python bindings."""
    # Debian sid ships only the MPI bindings; they load only when this is set
    os.environ.setdefault("ADIOS2_ALWAYS_USE_MPI", "1")
    import adios2

    series = {name: [] for name in names}
    with adios2.FileReader(str(path)) as reader:
        for step in range(reader.num_steps()):
            for name in names:
                series[name].append(reader.read(name, step_selection=[step, 1]))
    return series


def test_stress_and_internal_variables_are_written_to_vtx_and_read_back(tmp_path):
    """A plastic Cu / viscoelastic PI strip cooled in two steps: stress.bp holds, at every
    step, the DG1 stress and the projected internal variables, equal to the fields in
    memory, and the copper has yielded (a nonzero plastic strain is what is compared)."""
    case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="40 um",
                       mesh_size="4 um", start="400 degC", end="25 degC",
                       extra=PLASTIC_COPPER)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    writer = FieldWriter(tmp_path / "fields.xdmf", problem, emesh)
    in_memory = []
    try:
        for time, temperature in ((600.0, 473.15), (1200.0, 298.15)):
            problem.advance(temperature, 600.0, {})
            writer.write(time, temperature)
            in_memory.append({f.name: f.x.array.copy()
                              for f in (writer.stress_field, *writer.internal_variables)})
    finally:
        writer.close()
    names = ["sigma", "equivalent_plastic_strain", "recrystallized_fraction",
             "viscous_stress_norm"]
    assert sorted(in_memory[0]) == sorted(names)
    assert in_memory[-1]["equivalent_plastic_strain"].max() > 1e-4
    stored = read_vtx(tmp_path / "stress.bp", names)
    for step, fields in enumerate(in_memory):
        for name, values in fields.items():
            np.testing.assert_allclose(stored[name][step].ravel(), values, rtol=1e-12,
                                       atol=1e-12 * np.abs(values).max(), err_msg=name)


@pytest.mark.parametrize("degree", [1, 2])
def test_elastic_stress_in_vtx_is_the_displacement_elements_stress(tmp_path, degree):
    """An elastic strip: stress.bp holds the exact stress of the displacement element
    (DG of degree - 1) and no internal variables."""
    case = layers_case([("copper", "8 um"), ("polyimide", "8 um")], length="40 um",
                       mesh_size="4 um", degree=degree)
    emesh = build_mesh(case)
    problem = make_problem(emesh, case)
    writer = FieldWriter(tmp_path / "fields.xdmf", problem, emesh)
    try:
        problem.advance(case.schedule.end_temperature, 1.0, {})
        writer.write(1.0, case.schedule.end_temperature)
    finally:
        writer.close()
    assert writer.internal_variables == []
    assert writer.stress_field.function_space.ufl_element().degree == degree - 1
    stored = read_vtx(tmp_path / "stress.bp", ["sigma"])["sigma"][0].ravel()
    np.testing.assert_allclose(stored, writer.stress_field.x.array, rtol=1e-12)
    assert np.abs(stored).max() > 1e6  # a real thermal-mismatch stress, Pa
