"""The unit of every number a result holds (all SI), for summary.json's `units` map and the
CSV headers (docs/outputs.md, "Units").

CSV headers: a column with a dimension ends in its SI unit after an underscore
(`normal_traction_Pa`, `time_s`, `temperature_K`, `x_m`, `curvature_per_m`); a column without
such an ending is dimensionless (a strain, a fraction, the risk index, a count) or a label.

summary.json: `units` maps dotted key patterns (`*` for any part: an interface's name, a list
index) to the unit of the numbers they match ("1": dimensionless). In 2D the extensive
pull-off quantities are per unit depth (a force in N/m, an energy in J/m).
"""

from fnmatch import fnmatchcase

# CSV column endings: the unit as written in a column name.
COLUMN_SUFFIX = {"m": "m", "Pa": "Pa", "s": "s", "K": "K", "1/m": "per_m", "N": "N",
                 "N/m": "N_per_m", "J/m^2": "J_per_m2", "J/m": "J_per_m", "J": "J",
                 "m^2": "m2"}


def column(name: str, unit: str | None) -> str:
    """A CSV column's header: the name with its unit ending (None, "1" or "": none; a unit
    not in COLUMN_SUFFIX is spelled out: K/s -> K_per_s)."""
    if unit in (None, "1", ""):
        return name
    suffix = COLUMN_SUFFIX.get(unit) or unit.replace("/", "_per_").replace("^", "") \
        .replace("*", "_")
    return f"{name}_{suffix}"


# The unit of each quantity the CSV files hold ("{force}", "{energy}": per unit depth in 2D).
COLUMN_UNITS = {
    "time": "s", "temperature": "K", "furnace": "K", "x": "m", "y": "m", "z": "m",
    "arc_length": "m", "face_displacement": "m", "displacement": "m",
    "normal_traction": "Pa", "shear_traction": "Pa", "normal_traction_averaged": "Pa",
    "shear_traction_averaged": "Pa", "max_normal_traction_averaged": "Pa",
    "max_shear_traction_averaged": "Pa", "max_von_mises": "Pa",
    "force": "{force}", "top_reaction": "{force}", "force_per_width": "Pa",
    "force_per_area": "Pa", "dissipated_energy": "{energy}", "external_work": "{energy}",
    "elastic_energy": "{energy}", "cohesive_free_energy": "{energy}",
    "plastic_dissipation": "{energy}", "eigenstrain_work": "{energy}",
}
# The dimensionless columns and the labels (a column named neither here nor in COLUMN_UNITS
# is refused, so every new column says which it is).
DIMENSIONLESS_COLUMNS = {
    "interface", "chain", "nx", "ny", "nz", "risk", "step", "record", "out_of_plane_strain",
    "newton_iterations", "step_cuts", "max_risk", "binder_remaining", "crystallized_fraction",
    "degree_of_cure", "relative_density", "curing_strain", "densification_strain", "soc",
    "cycle", "path_step", "volume_ratio", "prescribed_volume_ratio",
    "max_equivalent_plastic_strain", "material_soc", "debonded_fraction", "max_damage",
    "damage", "binder_plastic_strain", "energy_balance_error",
}


def _resolved(unit: str, dim: int) -> str:
    return unit.replace("{force}", "N/m" if dim == 2 else "N") \
        .replace("{energy}", "J/m" if dim == 2 else "J")


def header(names, dim: int = 2, units: dict | None = None) -> list[str]:
    """The CSV header of columns `names` (a name may end in ":WHAT", e.g. max_risk:NAME: the
    unit ending goes before the colon); `units` adds the units of columns named at run time
    (the furnace's positions)."""
    known = {**COLUMN_UNITS, **(units or {})}
    written = []
    for name in names:
        quantity, colon, what = name.partition(":")
        if quantity in known:
            quantity = column(quantity, _resolved(known[quantity], dim))
        elif quantity not in DIMENSIONLESS_COLUMNS:
            raise ValueError(f"CSV column {name!r}: no unit known (solver/io/units.py)")
        written.append(f"{quantity}{colon}{what}")
    return written


# (pattern of a dotted summary key, unit), the first matching pattern wins. "{force}" and
# "{energy}" are N and J in 3D, N/m and J/m per unit depth in 2D.
SUMMARY_UNITS = [
    # the discretization error (sinter run --convergence): a quantity's numbers in its unit
    ("convergence.meshes.*.fine_mesh_size", "m"), ("convergence.meshes.*.wall_time", "s"),
    ("convergence.meshes.*", "1"), ("convergence.quantities.*.ratio", "1"),
    ("convergence.quantities.*.order", "1"), ("convergence.quantities.*.relative_error*", "1"),
    ("convergence.quantities.*", "the row's unit"),
    # times, temperatures and counts wherever they are
    ("*.time", "s"), ("*_time", "s"), ("schedule.duration", "s"), ("schedule.*_step", "s"),
    ("*temperature*", "K"), ("*_lag", "K"), ("furnace.max_spread", "K"),
    # a condition's value and limit: in its row's "unit"
    ("process_window.*.value", "the row's unit"), ("process_window.*.limit", "the row's unit"),
    ("delamination.*.value", "1"), ("delamination.*.limit", "1"), ("*.pass", "1"),
    ("cells", "1"), ("dofs", "1"), ("*.dofs", "1"), ("*steps", "1"), ("*.step", "1"),
    ("*_step", "1"), ("*.increments", "1"), ("*_count", "1"), ("*.size", "1"),
    ("*.soc", "1"), ("*_soc", "1"),
    # stresses and strengths
    ("*max_risk*", "1"), ("*traction*", "Pa"), ("*von_mises*.at.*", "m"),
    ("*von_mises*", "Pa"), ("*modulus*", "Pa"), ("pulloff.strength", "Pa"),
    # the pull-off's forces, energies and sizes
    ("pulloff.peak_force", "{force}"), ("*force_per_width", "Pa"),
    ("*force_per_area", "Pa"), ("*.force", "{force}"),
    ("pulloff.work_of_separation", "J/m^2"), ("pulloff.energy_release_rate", "J/m^2"),
    ("pulloff.dissipated_energy", "{energy}"), ("pulloff.external_work", "{energy}"),
    ("pulloff.plastic_dissipation", "{energy}"),
    ("pulloff.*_displacement", "m"), ("pulloff.layer_failure.displacement", "m"),
    ("pulloff.layer_failure.*mesh_size", "m"),
    # geometry
    ("*_area*", "m^2"), ("*_volume", "m^3"), ("*volume_fraction*", "1"),
    ("*volume_ratio*", "1"), ("*.coordinates.*", "m"), ("*.at.*", "m"),
    ("geometry.Ra*", "m"), ("geometry.Sa*", "m"), ("*length*", "m"), ("*width*", "m"),
    ("*thickness*", "m"), ("*height*", "m"), ("*diameter*", "m"), ("*gap*", "m"),
    ("*pitch*", "m"), ("*face_displacement", "m"), ("geometry.element_size*", "m"),
    ("geometry.mix_thermal_expansion", "1/K"), ("bending.*", "1/m"),
    # dimensionless
    ("*strain*", "1"), ("*fraction*", "1"), ("*quality*", "1"), ("*jacobian*", "1"),
    ("*poisson_ratio", "1"), ("*geometry_degree", "1"), ("geometry.recurved*", "1"),
    ("*packing_relaxed", "1"), ("*fully_debonded", "1"), ("*plastic_bulk", "1"),
    ("*residual_stress", "1"), ("*.cycle", "1"), ("*load_after_debond", "1"),
    ("*elongation_at_break", "1"),
]


def _matching(key: str, dim: int) -> tuple[str, str] | None:
    """The first (pattern, unit) of SUMMARY_UNITS that matches the dotted key."""
    for pattern, unit in SUMMARY_UNITS:
        if fnmatchcase(key, pattern):
            return pattern, _resolved(unit, dim)
    return None


def unit_of(key: str, dim: int = 2) -> str | None:
    """The unit of the number at the dotted summary key; None where none is known."""
    found = _matching(key, dim)
    return found[1] if found else None


def summary_units(numbers: dict, dim: int) -> dict:
    """summary.json's `units`: {pattern: unit} of the patterns that match a number of the
    summary (`numbers`: {dotted key: value}), in the order of SUMMARY_UNITS."""
    used = dict(filter(None, (_matching(key, dim) for key in numbers)))
    return {pattern: used[pattern] for pattern, _ in SUMMARY_UNITS if pattern in used}


def numbers(summary, prefix: str = "") -> dict:
    """Every number of a summary (booleans included) by dotted key, list items by index."""
    found = {}
    items = summary.items() if isinstance(summary, dict) else enumerate(summary)
    for key, value in items:
        dotted = f"{prefix}{key}"
        if isinstance(value, dict | list | tuple):
            found.update(numbers(value, f"{dotted}."))
        elif isinstance(value, bool | int | float):
            found[dotted] = value
    return found
