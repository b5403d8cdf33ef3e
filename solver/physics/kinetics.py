"""Process kinetics along a temperature history: the checks the patents require, and the
process eigenstrains of the binder and the mix.

Every model here is an Arrhenius rate integrated along the history, so each quantity is a
closed function of one integral:

- binder decomposition, first order: m/m0 = exp(-I), I = int A exp(-Ea/(R T)) dt;
- crystallization of the alloy, JMAK with isokinetic additivity: X = 1 - exp(-I^n);
- curing (imidization) of order n: 1 - alpha = (1 + (n - 1) I)^(-1/(n - 1)), exp(-I) at n = 1;
- densification on a master sintering curve (Su & Johnson 1996): the work of sintering
  Theta = int (1/T) exp(-Q/(R T)) dt, and a sigmoid rho(ln Theta).

A history is `times` (s) and `temperatures` (K), piecewise linear between the samples (the
driver's time steps). The integrals are accurate however coarse those steps are: the history
is refined (`refine_history`) so no sub-interval changes the temperature by more than
`max_temperature_step`, and each sub-interval is integrated with ln(integrand) linear in
time, which is exact on holds and second order on ramps (docs/kinetics.md).

All default parameters are placeholders, not calibrated data: see each Field's description.
"""

import functools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pint
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError
from scipy.constants import R as GAS_CONSTANT  # J/(mol K)
from scipy.special import expit, lambertw

from solver.case.tables import Table, rule_broken
from solver.case.units import SIQuantity, ureg
from solver.io import units

logger = logging.getLogger(__name__)

# Largest temperature change in one integration sub-interval: the relative error of the
# Arrhenius integrals is about 7e-6 (dT / 1 K)^2 for Ea/(R T) ~ 35 (docs/kinetics.md).
DEFAULT_TEMPERATURE_STEP = 0.25  # K


class ActivationEnergyQuantity(SIQuantity):
    """An activation energy per mole ('250 kJ/mol') or per atom ('2.8 eV'), stored in J/mol."""

    def validate(self, value: Any, si_values: bool = False) -> float | None:
        per_atom = _energy_per_atom(value)
        if per_atom is None:
            return super().validate(value, si_values)
        per_mole = float((per_atom * ureg.avogadro_constant).to("J/mol").magnitude)
        if not (np.isfinite(per_mole) and per_mole > 0):
            raise PydanticCustomError(
                "quantity",
                "{message}",
                {
                    "message": "expected a positive activation energy (e.g. '250 kJ/mol' or "
                    f"'2.8 eV'), got '{value}'"
                },
            )
        return per_mole


def _energy_per_atom(value: Any) -> pint.Quantity | None:
    """`value` as a pint energy if it is a string with energy units (eV), else None."""
    return _parsed_energy(value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=1024)
def _parsed_energy(value: str) -> pint.Quantity | None:
    """_energy_per_atom of a string, cached (pint's parser is slow; a case repeats values)."""
    try:
        quantity = ureg.Quantity(value)
    # Anything pint cannot read is left to SIQuantity, which words the error.
    except Exception:
        return None
    if isinstance(quantity, pint.Quantity) and quantity.check("[energy]"):
        return quantity
    return None


MolarActivationEnergy = Annotated[
    float, ActivationEnergyQuantity("activation energy", positive=True)
]
PreExponentialFactor = Annotated[float, SIQuantity("pre-exponential factor", positive=True)]
WorkOfSintering = Annotated[float, SIQuantity("work of sintering", positive=True)]
PositiveHeatingRate = Annotated[float, SIQuantity("heating rate", positive=True)]

Atmosphere = Literal["argon", "nitrogen", "vacuum", "forming_gas", "air"]
OXIDIZING_ATMOSPHERES = frozenset({"air"})


class BinderDecomposition(Table):
    """First-order thermal decomposition of the binder: dm/dt = -A exp(-Ea/(R T)) m."""

    prefactor: PreExponentialFactor = Field(
        "3.2e11 1/s",
        validate_default=True,
        description="pre-exponential factor A (placeholder: with the default activation "
        "energy, 1% mass loss after 10 h at 450 degC)",
    )
    activation_energy: MolarActivationEnergy = Field(
        "250 kJ/mol",
        validate_default=True,
        description="activation energy Ea of the decomposition, per mole or per atom (eV) "
        "(placeholder for a polyimide)",
    )
    max_mass_loss: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="largest mass fraction lost for the binder to count as undecomposed",
    )
    materials: list[str] = Field(
        ["polyimide", "pvdf", "mix"],
        description="materials that hold the binder: the condition applies to a case that "
        "uses one of them (n/a otherwise)",
    )


class Crystallization(Table):
    """JMAK crystallization of the amorphous alloy: X = 1 - exp(-(int k dt)^n)."""

    prefactor: PreExponentialFactor = Field(
        "7e12 1/s",
        validate_default=True,
        description="pre-exponential factor k0 of the rate k (placeholder: with the default "
        "activation energy, half crystallized after 30 min at 600 degC, 4.8 h at 550 degC)",
    )
    activation_energy: MolarActivationEnergy = Field(
        "2.8 eV",
        validate_default=True,
        description="activation energy Ea of the rate k, per mole or per atom (eV) "
        "(placeholder for an a-Si-like alloy; "
        "270 kJ/mol, within 170-360 kJ/mol of Al- and Cu-based glasses)",
    )
    avrami_exponent: float = Field(2.5, gt=0, description="JMAK (Avrami) exponent n")
    max_crystallized_fraction: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="largest crystallized fraction for the alloy to count as substantially "
        "amorphous",
    )
    reference_heating_rate: PositiveHeatingRate = Field(
        "10 K/min",
        validate_default=True,
        description="heating rate of the Kissinger crystallization temperature when the "
        "schedule does not heat (otherwise the schedule's own heating rate)",
    )
    materials: list[str] = Field(
        ["mix", "amorphous_silicon", "silicon_alloy_film"],
        description="materials that hold the amorphous alloy: its two conditions apply to a "
        "case that uses one of them (n/a otherwise)",
    )


class Curing(Table):
    """Imidization of the binder: d(alpha)/dt = A exp(-Ea/(R T)) (1 - alpha)^n."""

    prefactor: PreExponentialFactor = Field(
        "1.3e8 1/s",
        validate_default=True,
        description="pre-exponential factor A (placeholder: with the default activation "
        "energy and order, half cured after 10 min at 200 degC)",
    )
    activation_energy: MolarActivationEnergy = Field(
        "100 kJ/mol",
        validate_default=True,
        description="activation energy Ea of the imidization, per mole or per atom (eV) "
        "(placeholder)",
    )
    reaction_order: float = Field(1.0, ge=0, description="reaction order n")
    total_shrinkage: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="linear shrinkage of the binder at full cure (0: off; about 0.02 is a "
        "placeholder to calibrate); the eigenstrain is -total_shrinkage * alpha, isotropic",
    )
    materials: list[str] = Field(
        ["polyimide"], description="materials that shrink as the binder cures"
    )


class Densification(Table):
    """Master sintering curve of the mix: rho(Theta), Theta = int (1/T) exp(-Q/(R T)) dt."""

    activation_energy: MolarActivationEnergy = Field(
        "150 kJ/mol",
        validate_default=True,
        description="apparent activation energy Q of sintering, per mole or per atom (eV) "
        "(placeholder)",
    )
    initial_density: float = Field(
        0.60, gt=0, le=1, description="relative density of the mix before sintering (placeholder)"
    )
    final_density: float = Field(
        0.60,
        gt=0,
        le=1,
        description="relative density the curve tends to (equal to initial_density: off; "
        "0.65 is a placeholder to calibrate)",
    )
    materials: list[str] = Field(["mix"], description="materials that densify")
    theta_at_half_densification: WorkOfSintering = Field(
        "1.2e-11 s/K",
        validate_default=True,
        description="work of sintering Theta at which half of the densification is done "
        "(placeholder: about 1 h at 400 degC with the default Q)",
    )
    log_theta_width: float = Field(
        1.0, gt=0, description="width of the sigmoid in ln(Theta) (placeholder)"
    )

    @model_validator(mode="after")
    def _check_densifies(self) -> "Densification":
        if self.final_density < self.initial_density:
            raise rule_broken(
                "final_density", f"must not be below initial_density ({self.initial_density:g}),"
                f" got {self.final_density:g}")
        return self


class KineticsSection(Table):
    """[kinetics]: the process checks and the process eigenstrains."""

    binder_decomposition: BinderDecomposition = Field(
        default_factory=BinderDecomposition, description="thermal decomposition of the binder"
    )
    crystallization: Crystallization = Field(
        default_factory=Crystallization, description="crystallization of the amorphous alloy"
    )
    curing: Curing = Field(default_factory=Curing, description="curing shrinkage of the binder")
    densification: Densification = Field(
        default_factory=Densification, description="densification of the mix"
    )


# --- Integration along a history ------------------------------------------------------------


class RefinedHistory(NamedTuple):
    times: np.ndarray  # s
    temperatures: np.ndarray  # K
    samples: np.ndarray  # index in these arrays of each sample of the history refined


def _checked_history(times: Any, temperatures: Any) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(times, dtype=float)
    temperatures = np.asarray(temperatures, dtype=float)
    if times.ndim != 1 or times.shape != temperatures.shape or times.size == 0:
        raise ValueError(
            f"times and temperatures must be 1D arrays of one length, got shapes "
            f"{times.shape} and {temperatures.shape}"
        )
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(temperatures))):
        raise ValueError("times and temperatures must be finite")
    if np.any(np.diff(times) <= 0):
        raise ValueError("times must increase strictly")
    if np.any(temperatures <= 0):
        raise ValueError("temperatures must be absolute (K), positive")
    return times, temperatures


def refine_history(
    times: Any,
    temperatures: Any,
    max_temperature_step: float = DEFAULT_TEMPERATURE_STEP,
    max_time_step: float | None = None,
) -> RefinedHistory:
    """The piecewise-linear history resampled so that no interval changes the temperature by
    more than `max_temperature_step` (K) nor lasts longer than `max_time_step` (s, if given).

    Every original sample is kept (`samples` says where); the new ones lie on the straight
    segments between them, so the history itself is unchanged.
    """
    times, temperatures = _checked_history(times, temperatures)
    if max_temperature_step <= 0 or (max_time_step is not None and max_time_step <= 0):
        raise ValueError("the largest temperature and time steps must be positive")
    durations = np.diff(times)
    changes = np.diff(temperatures)
    pieces = np.ceil(np.abs(changes) / max_temperature_step)
    if max_time_step is not None:
        pieces = np.maximum(pieces, np.ceil(durations / max_time_step))
    pieces = np.maximum(pieces, 1).astype(int)
    # Position of each new point within its interval: 0, 1/p, ..., (p-1)/p.
    first = np.concatenate([[0], np.cumsum(pieces)])
    interval = np.repeat(np.arange(pieces.size), pieces)
    fraction = (np.arange(first[-1]) - first[interval]) / pieces[interval]
    fine_times = np.append(times[interval] + fraction * durations[interval], times[-1])
    fine_temperatures = np.append(
        temperatures[interval] + fraction * changes[interval], temperatures[-1]
    )
    return RefinedHistory(fine_times, fine_temperatures, first)


def _cumulative_integral(times: np.ndarray, log_integrand: np.ndarray) -> np.ndarray:
    """int_0^t f dt at every sample, with ln f linear in t on each interval.

    Each interval contributes dt times the logarithmic mean of f at its ends, written with
    the larger end factored out so it neither overflows nor divides 0 by 0 on holds.
    """
    lower, upper = log_integrand[:-1], log_integrand[1:]
    spread = np.abs(upper - lower)
    flat = spread == 0
    mean_over_max = np.where(flat, 1.0, -np.expm1(-spread) / np.where(flat, 1.0, spread))
    increments = np.diff(times) * np.exp(np.maximum(lower, upper)) * mean_over_max
    return np.concatenate([[0.0], np.cumsum(increments)])


def arrhenius_integral(
    times: Any,
    temperatures: Any,
    prefactor: float,
    activation_energy: float,
    max_temperature_step: float = DEFAULT_TEMPERATURE_STEP,
) -> np.ndarray:
    """int_0^t A exp(-Ea/(R T)) dt at each of `times` (A in 1/s, Ea in J/mol)."""
    fine = refine_history(times, temperatures, max_temperature_step)
    log_rate = np.log(prefactor) - activation_energy / (GAS_CONSTANT * fine.temperatures)
    return _cumulative_integral(fine.times, log_rate)[fine.samples]


def sintering_work(
    times: Any,
    temperatures: Any,
    activation_energy: float,
    max_temperature_step: float = DEFAULT_TEMPERATURE_STEP,
) -> np.ndarray:
    """The master-sintering-curve work Theta = int_0^t (1/T) exp(-Q/(R T)) dt (s/K)."""
    fine = refine_history(times, temperatures, max_temperature_step)
    log_integrand = -np.log(fine.temperatures) - activation_energy / (
        GAS_CONSTANT * fine.temperatures
    )
    return _cumulative_integral(fine.times, log_integrand)[fine.samples]


# --- The models ----------------------------------------------------------------------------


def binder_remaining_fraction(
    times: Any, temperatures: Any, binder: BinderDecomposition
) -> np.ndarray:
    """m(t)/m0 of the binder under first-order decomposition."""
    integral = arrhenius_integral(times, temperatures, binder.prefactor, binder.activation_energy)
    return np.exp(-integral)


def crystallized_fraction(
    times: Any, temperatures: Any, crystallization: Crystallization
) -> np.ndarray:
    """JMAK fraction X(t) of the alloy that has crystallized."""
    integral = arrhenius_integral(
        times, temperatures, crystallization.prefactor, crystallization.activation_energy
    )
    return -np.expm1(-(integral**crystallization.avrami_exponent))


def degree_of_cure(times: Any, temperatures: Any, curing: Curing) -> np.ndarray:
    """alpha(t) of the n-th order cure law, from alpha = 0 at the start."""
    integral = arrhenius_integral(times, temperatures, curing.prefactor, curing.activation_energy)
    order = curing.reaction_order
    if order == 1.0:
        return -np.expm1(-integral)
    # (1 - alpha)^(1 - n) = 1 + (n - 1) I; for n < 1 the cure completes when that reaches 0.
    base = (order - 1.0) * integral
    complete = base <= -1.0
    uncured = np.exp(np.log1p(np.where(complete, 0.0, base)) / (1.0 - order))
    return np.where(complete, 1.0, 1.0 - uncured)


def relative_density(times: Any, temperatures: Any, densification: Densification) -> np.ndarray:
    """rho(Theta(t)) on the master sintering curve; rho0 at the start (Theta = 0)."""
    theta = sintering_work(times, temperatures, densification.activation_energy)
    with np.errstate(divide="ignore"):  # ln 0 = -inf at the start: the sigmoid is 0 there
        log_theta = np.log(theta)
    progress = expit(
        (log_theta - np.log(densification.theta_at_half_densification))
        / densification.log_theta_width
    )
    return (
        densification.initial_density
        + (densification.final_density - densification.initial_density) * progress
    )


def curing_shrinkage_strain(times: Any, temperatures: Any, curing: Curing) -> np.ndarray:
    """Isotropic linear eigenstrain of the binder from curing: -total_shrinkage * alpha."""
    return -curing.total_shrinkage * degree_of_cure(times, temperatures, curing)


def densification_strain(times: Any, temperatures: Any, densification: Densification) -> np.ndarray:
    """Isotropic linear eigenstrain of the mix from densification: (rho0/rho)^(1/3) - 1."""
    density = relative_density(times, temperatures, densification)
    return np.cbrt(densification.initial_density / density) - 1.0


def kissinger_peak_temperature(
    prefactor: float, activation_energy: float, heating_rate: float
) -> float:
    """Tp (K) solving Kissinger's ln(beta/Tp^2) = ln(A R/Ea) - Ea/(R Tp) at rate beta (K/s).

    With x = Ea/(R Tp) it reads x^2 exp(x) = A Ea/(beta R), so x = 2 W(sqrt(A Ea/(beta R))/2)
    with W the principal branch of Lambert's function.
    """
    scaled = np.sqrt(prefactor * activation_energy / (heating_rate * GAS_CONSTANT)) / 2
    reduced_energy = 2.0 * lambertw(scaled).real
    return float(activation_energy / (GAS_CONSTANT * reduced_energy))


def crystallization_temperature(crystallization: Crystallization, heating_rate: float) -> float:
    """The alloy's crystallization (DSC peak) temperature at `heating_rate` (K/s), Kissinger."""
    return kissinger_peak_temperature(
        crystallization.prefactor, crystallization.activation_energy, heating_rate
    )


def heating_rate(times: Any, temperatures: Any) -> float | None:
    """Mean rate (K/s) over the intervals that heat: total rise / time spent heating; None if
    the history never heats."""
    times, temperatures = _checked_history(times, temperatures)
    rises = np.diff(temperatures)
    heating = rises > 0
    if not np.any(heating):
        return None
    return float(rises[heating].sum() / np.diff(times)[heating].sum())


# --- Summary, curves, files ----------------------------------------------------------------


def process_window(
    times: Any,
    temperatures: Any,
    kinetics: KineticsSection,
    atmosphere: Atmosphere,
    materials_used: Iterable[str] | None = None,
) -> list[dict]:
    """The patents' process conditions along the history: a list of
    {"condition", "value", "limit", "unit", "pass", "verdict"}, JSON-serializable, SI units.

    A fraction passes when it stays strictly below its limit; so does the maximum temperature
    against the crystallization temperature. A condition on a material the case does not
    use (`materials_used`, the names of the case's materials; None: every condition applies)
    does not apply: its "pass" is None and its verdict "n/a" (the alloy's crystallization in
    a copper/polyimide bilayer); otherwise the verdict is "pass" or "fail".
    """
    times, temperatures = _checked_history(times, temperatures)
    crystallization = kinetics.crystallization
    used = None if materials_used is None else set(materials_used)

    def applies(section) -> bool:
        return used is None or bool(used & set(section.materials))

    # Both fractions grow monotonically, so their largest value is the final one.
    mass_loss = 1.0 - binder_remaining_fraction(times, temperatures, kinetics.binder_decomposition)
    crystallized = crystallized_fraction(times, temperatures, crystallization)
    rate = heating_rate(times, temperatures)
    rate_source = "schedule" if rate is not None else "reference"
    if rate is None:
        rate = crystallization.reference_heating_rate
    onset = crystallization_temperature(crystallization, rate)
    max_temperature = float(temperatures.max())
    rows = [
        condition_row(
            "binder mass loss (binder undecomposed)",
            float(mass_loss[-1]),
            kinetics.binder_decomposition.max_mass_loss,
            "1",
            bool(mass_loss[-1] < kinetics.binder_decomposition.max_mass_loss),
            applies(kinetics.binder_decomposition),
        ),
        condition_row(
            "crystallized fraction of the alloy (substantially amorphous)",
            float(crystallized[-1]),
            crystallization.max_crystallized_fraction,
            "1",
            bool(crystallized[-1] < crystallization.max_crystallized_fraction),
            applies(crystallization),
        ),
        condition_row(
            "atmosphere (non-oxidizing)",
            atmosphere,
            "non-oxidizing",
            "",
            atmosphere not in OXIDIZING_ATMOSPHERES,
        ),
        condition_row(
            f"maximum temperature below the crystallization temperature (Kissinger, "
            f"{rate_source} heating rate {rate * 60:.3g} K/min)",
            max_temperature,
            onset,
            "K",
            max_temperature < onset,
            applies(crystallization),
        ),
    ]
    for row in rows:
        if row["verdict"] == "fail":
            logger.warning(
                "process window: %s: %s, limit %s", row["condition"], row["value"], row["limit"]
            )
    return rows


def condition_row(condition: str, value: float | str, limit: float | str, unit: str,
                  passed: bool, applies: bool = True) -> dict:
    """One condition of a verdict: its value against its limit (in `unit`, "1" for a
    fraction, "" for a word), and whether it passes (None where it does not apply)."""
    return {"condition": condition, "value": value, "limit": limit, "unit": unit,
            "pass": passed if applies else None,
            "verdict": ("pass" if passed else "fail") if applies else "n/a"}


KINETICS_COLUMNS = [
    "time",
    "temperature",
    "binder_remaining",
    "crystallized_fraction",
    "degree_of_cure",
    "relative_density",
    "curing_strain",
    "densification_strain",
]


def kinetic_curves(
    times: Any,
    temperatures: Any,
    kinetics: KineticsSection,
    max_time_step: float | None = None,
) -> pd.DataFrame:
    """Every kinetic quantity along the history, refined for plotting (columns
    KINETICS_COLUMNS, SI). `max_time_step` defaults to 1/500 of the duration so that holds
    are resolved too."""
    times, temperatures = _checked_history(times, temperatures)
    if max_time_step is None and times.size > 1:
        max_time_step = (times[-1] - times[0]) / 500
    fine = refine_history(times, temperatures, max_time_step=max_time_step)
    history = (fine.times, fine.temperatures)
    return pd.DataFrame(
        {
            "time": fine.times,
            "temperature": fine.temperatures,
            "binder_remaining": binder_remaining_fraction(*history, kinetics.binder_decomposition),
            "crystallized_fraction": crystallized_fraction(*history, kinetics.crystallization),
            "degree_of_cure": degree_of_cure(*history, kinetics.curing),
            "relative_density": relative_density(*history, kinetics.densification),
            "curing_strain": curing_shrinkage_strain(*history, kinetics.curing),
            "densification_strain": densification_strain(*history, kinetics.densification),
        },
        columns=KINETICS_COLUMNS,
    )


def write_kinetics(directory: str | Path, frame: pd.DataFrame) -> None:
    """kinetics.csv (the frame, SI units in its header) and kinetics.png (its curves) in
    `directory`.

    The curves are told apart by line style as well as colour: fractions that coincide
    (the binder gone, nothing crystallized: both 0) stay visible as two patterns."""
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    directory = Path(directory)
    frame.rename(columns=dict(zip(frame.columns, units.header(frame.columns), strict=True))) \
        .to_csv(directory / "kinetics.csv", index=False, float_format="%.9g")
    hours = frame["time"] / 3600
    figure = Figure(figsize=(7, 8), layout="constrained")
    FigureCanvasAgg(figure)
    temperature_axes, fraction_axes, density_axes = figure.subplots(3, 1, sharex=True)
    temperature_axes.plot(hours, frame["temperature"] - 273.15, color="black")
    temperature_axes.set_ylabel("temperature [degC]")
    for column, label, style in (
        ("binder_remaining", "binder remaining m/m0", {"linewidth": 4.0, "alpha": 0.6}),
        ("crystallized_fraction", "crystallized fraction X", {"linestyle": "--"}),
        ("degree_of_cure", "degree of cure alpha", {"linestyle": ":", "linewidth": 2.0}),
    ):
        fraction_axes.plot(hours, frame[column], label=label, **style)
    fraction_axes.set_ylabel("fraction")
    fraction_axes.set_ylim(-0.02, 1.02)
    fraction_axes.legend(loc="center right")
    density_axes.plot(hours, frame["relative_density"], color="tab:purple")
    density_axes.set_ylabel("relative density")
    density_axes.set_xlabel("time [h]")
    for axes in (temperature_axes, fraction_axes, density_axes):
        axes.grid(True, alpha=0.3)
    figure.savefig(directory / "kinetics.png", dpi=120)
    # `directory` is the run's temporary directory, renamed when the run completes: name
    # the files as they will be in the results.
    logger.info("kinetics written: kinetics.csv, kinetics.png")
