"""Numbers as an engineer reads them: every value with its unit, in the units a case file
uses (um, MPa, degC, h) rather than SI (the files hold SI: solver/io/units.py)."""

KELVIN_AT_0_DEGC = 273.15

# SI unit -> (shown unit, factor: shown = SI value / factor, offset subtracted after)
DISPLAY = {"m": ("um", 1e-6, 0.0), "Pa": ("MPa", 1e6, 0.0), "K": ("degC", 1.0, KELVIN_AT_0_DEGC),
           "m^2": ("um^2", 1e-12, 0.0), "m^3": ("um^3", 1e-18, 0.0), "1": ("", 1.0, 0.0)}


def display_unit(unit: str) -> str:
    """The unit a value of SI `unit` is shown in."""
    return DISPLAY.get(unit, (unit, 1.0, 0.0))[0]


def to_display(value: float, unit: str) -> float:
    """An SI value in its shown unit (a temperature in degC, a length in um, ...)."""
    _, factor, offset = DISPLAY.get(unit, (unit, 1.0, 0.0))
    return value / factor - offset


def format_quantity(value, unit: str, digits: int = 4) -> str:
    """'400 MPa', '673.1 degC', '1.378 um', '0.05' (a fraction), 'argon' (a word)."""
    if isinstance(value, str):
        return value
    if unit == "K":
        return f"{to_display(value, unit):.1f} degC"
    if unit == "s":
        return f"{value:.{digits}g} s" + (f" ({value / 3600:.3g} h)" if value >= 3600 else "")
    shown = display_unit(unit)
    return f"{to_display(value, unit):.{digits}g}" + (f" {shown}" if shown else "")


def format_condition(row: dict) -> str:
    """A condition's value against its limit: '400.0 degC (limit 663.9 degC)'."""
    unit = row.get("unit", "")
    return (f"{format_quantity(row['value'], unit, 3)} "
            f"(limit {format_quantity(row['limit'], unit, 3)})")


def format_location(at) -> str:
    """A point [m] in um: '(2.21, 0.0894) um'."""
    return "(" + ", ".join(f"{c / 1e-6:.3g}" for c in at) + ") um"


# The headline numbers of --convergence (solver/post/convergence.py) by their summary keys
QUANTITY_LABELS = {"max_risk": "max risk index", "max_normal_traction": "max normal traction",
                   "max_shear_traction": "max shear traction",
                   "max_normal_traction_averaged": "max normal, averaged",
                   "max_shear_traction_averaged": "max shear, averaged"}


def quantity_label(quantity: str) -> tuple[str, str]:
    """A headline number's dotted summary key as (where, what): ('interface_1_2', 'max risk
    index'), ('max von Mises stress', 'copper'), ('bending', 'curvature_x')."""
    parts = quantity.split(".")
    if parts[0] == "interfaces":
        return parts[1], QUANTITY_LABELS.get(parts[2], parts[2])
    if parts[0] == "final":
        return "max von Mises stress", parts[2]
    return parts[0], " ".join(parts[1:])


def format_convergence_limit(row: dict) -> list[str]:
    """A headline number's cells in a convergence table, in its shown unit: the value on each
    mesh, the ratio of successive differences, the limit +- the error estimate, and the
    relative distance of the case's own value from the limit (or the status where there
    is no limit: 'not converging', 'oscillating', 'one refinement')."""
    unit = row["unit"]
    cells = [f"{to_display(value, unit):.4g}" for value in row["values"]]
    cells.append("" if row["ratio"] is None else f"{row['ratio']:.3g}")
    if row["limit"] is None:
        return [*cells, row["status"], ""]
    side = "-" if row["values"][0] < row["limit"] else "+"
    return [*cells, f"{to_display(row['limit'], unit):.4g} +- "
                    f"{to_display(row['error_estimate'], unit):.2g}",
            f"{side}{100 * row['relative_error']:.2g} %"]
