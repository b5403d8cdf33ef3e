"""The particle packings of tests/test_particles.py timed against the 5 s a packing, or
giving up on an impossible one, should take (`make bench`, run by bench/run.py): prints
the records as JSON."""

import json
import time

import gmsh

from meshes import GeometryError, build_particles, pack_particles
from meshes.particles import DiameterDistribution, ParticleSpecies

MICROMETRE = 1e-6
PACKING_LIMIT = 5.0  # s

# tests/test_particles.py, test_packing_reaches_the_fractions_without_overlap (micrometres):
# lateral extent, thickness, Si fraction, mean diameter, spread, gap, Cu powder fraction
PACKINGS = [
    ((20.0,), 10.0, 0.40, 2.0, 0.5, 0.2, 0.0),
    ((20.0,), 10.0, 0.55, 2.0, 0.5, 0.2, 0.0),
    ((20.0,), 10.0, 0.45, 2.0, 0.5, 0.2, 0.05),
    ((8.0, 8.0), 6.0, 0.30, 2.0, 0.4, 0.15, 0.0),
    ((8.0, 8.0), 6.0, 0.38, 2.0, 0.4, 0.10, 0.0),
    ((8.0, 8.0), 6.0, 0.30, 2.0, 0.4, 0.15, 0.04),
]
# tests/test_particles.py, test_impossible_packing_is_a_one_line_error: giving up
IMPOSSIBLE_CELL_UM = {"length": 14.0, "foil_thickness": 2.0, "layer_thickness": 6.0,
                      "mean_diameter": 2.0, "diameter_spread": 0.3, "min_gap": 0.2,
                      "conductive_diameter": 1.4, "mesh_size": 1.0, "particle_mesh_size": 0.05}
IMPOSSIBLE = [{"volume_fraction": 0.8},
              {"volume_fraction": 0.3, "dim": 3, "width": 5.0, "layer_thickness": 3.5}]


def _packing_record(name: str, started: float) -> dict:
    wall_time = time.perf_counter() - started
    return {"case": name, "ranks": 1, "wall_time": wall_time, "limit": PACKING_LIMIT,
            "within_limit": wall_time < PACKING_LIMIT}


def packing_records() -> list[dict]:
    """Time each packing of the tests, and each impossible one's giving up."""
    records = []
    for lateral, thickness, fraction, mean, spread, gap, conductive in PACKINGS:
        species = [ParticleSpecies("silicon", fraction,
                                   DiameterDistribution("lognormal", mean, spread))]
        if conductive:
            species.append(ParticleSpecies("copper", conductive,
                                           DiameterDistribution("uniform", 0.8, 0.0)))
        started = time.perf_counter()
        pack_particles(lateral, thickness, species, gap, seed=2)
        records.append(_packing_record(
            f"pack_particles {'x'.join(f'{v:g}' for v in lateral)}x{thickness:g} um, "
            f"Si {fraction:g}, Cu {conductive:g}, gap {gap:g} um", started))
    for changes in IMPOSSIBLE:
        sizes = {**IMPOSSIBLE_CELL_UM, "volume_fraction": 0.45, **changes}
        arguments = {key: value * MICROMETRE if key not in ("volume_fraction", "dim") else value
                     for key, value in sizes.items()}
        gmsh.initialize()
        gmsh.option.setNumber("General.Terminal", 0)
        started = time.perf_counter()
        try:
            build_particles(**arguments)
            raise RuntimeError(f"packing {changes} was expected to be impossible")
        except GeometryError:
            pass
        finally:
            record = _packing_record(f"pack_particles gives up: {changes}", started)
            gmsh.finalize()
        records.append(record)
    return records


if __name__ == "__main__":
    print(json.dumps(packing_records()))
