"""Material behaviour at material points: linear thermo-elasticity, generalized Maxwell
viscoelasticity with time-temperature superposition, and J2 plasticity with annealing.

Pure, vectorized numpy over N material points, full 3D. Strains and stresses are Mandel
6-vectors [xx, yy, zz, sqrt2 yz, sqrt2 xz, sqrt2 xy]: the tangent is then a symmetric 6x6
matrix and a double contraction is a dot product. Every model has the interface of
MaterialModel: `update` maps the end-of-step strain, eigenstrain and temperature and the
start-of-step state to the stress, the consistent tangent d(stress)/d(strain) and the
end-of-step state. It never modifies the start-of-step state, so a Newton solver can call
it repeatedly within a step and keep the new state only once the step has converged.
Equations, defaults and verification: docs/constitutive.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from solver.materials import elasticity

GAS_CONSTANT = 8.314462618  # J/(mol K)
ZERO_CELSIUS = 273.15  # K

State = dict[str, np.ndarray]

# --- Mandel notation -------------------------------------------------------------------------

_MANDEL_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_MANDEL_SCALE = np.array([1.0, 1.0, 1.0, np.sqrt(2.0), np.sqrt(2.0), np.sqrt(2.0)])

IDENTITY = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # the unit tensor
VOLUMETRIC_PROJECTOR = np.outer(IDENTITY, IDENTITY) / 3.0  # A -> tr(A)/3 I
DEVIATORIC_PROJECTOR = np.eye(6) - VOLUMETRIC_PROJECTOR  # A -> dev A


def to_mandel(tensor: np.ndarray) -> np.ndarray:
    """(..., 3, 3) symmetric tensors -> (..., 6) Mandel vectors (the symmetric part is taken)."""
    tensor = np.asarray(tensor, dtype=float)
    symmetric = 0.5 * (tensor + np.swapaxes(tensor, -1, -2))
    return np.stack([symmetric[..., i, j] for i, j in _MANDEL_PAIRS], axis=-1) * _MANDEL_SCALE


def from_mandel(vector: np.ndarray) -> np.ndarray:
    """(..., 6) Mandel vectors -> (..., 3, 3) symmetric tensors."""
    components = np.asarray(vector, dtype=float) / _MANDEL_SCALE
    tensor = np.empty(components.shape[:-1] + (3, 3))
    for k, (i, j) in enumerate(_MANDEL_PAIRS):
        tensor[..., i, j] = components[..., k]
        tensor[..., j, i] = components[..., k]
    return tensor


def isotropic_stiffness(youngs_modulus: np.ndarray, poisson_ratio: np.ndarray) -> np.ndarray:
    """The isotropic elasticity tensor 3K P_vol + 2G P_dev, (..., 6, 6) for (...) moduli."""
    youngs_modulus = np.asarray(youngs_modulus, dtype=float)[..., None, None]
    poisson_ratio = np.asarray(poisson_ratio, dtype=float)[..., None, None]
    bulk_modulus = elasticity.bulk_modulus(youngs_modulus, poisson_ratio)
    shear_modulus = elasticity.shear_modulus(youngs_modulus, poisson_ratio)
    return 3.0 * bulk_modulus * VOLUMETRIC_PROJECTOR + 2.0 * shear_modulus * DEVIATORIC_PROJECTOR


def von_mises(stress: np.ndarray) -> np.ndarray:
    """The von Mises stress sqrt(3/2 s : s), s the deviator, of (..., 3, 3) stress tensors."""
    stress = np.asarray(stress, dtype=float)
    deviator = stress - np.trace(stress, axis1=-2, axis2=-1)[..., None, None] / 3 * np.eye(3)
    return np.sqrt(1.5 * np.einsum("...ij,...ij->...", deviator, deviator))


# --- Temperature-dependent data --------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TemperatureTable:
    """A property tabulated against temperature [K]: linear between the points, constant
    beyond the first and the last."""

    temperatures: Sequence[float]
    values: Sequence[float]

    def __post_init__(self):
        temperatures = np.asarray(self.temperatures, dtype=float)
        values = np.asarray(self.values, dtype=float)
        if temperatures.ndim != 1 or temperatures.size == 0 or values.shape != temperatures.shape:
            raise ValueError("a temperature table needs as many values as temperatures (>= 1)")
        if np.any(np.diff(temperatures) <= 0.0):
            raise ValueError("the temperatures of a table must be strictly increasing")
        object.__setattr__(self, "temperatures", temperatures)
        object.__setattr__(self, "values", values)

    def __call__(self, temperature: float | np.ndarray) -> np.ndarray:
        return np.interp(temperature, self.temperatures, self.values)

    def antiderivative(self, temperature: float | np.ndarray) -> np.ndarray:
        """The exact integral of the interpolated property from the first table temperature."""
        points, values = self.temperatures, self.values
        temperature = np.asarray(temperature, dtype=float)
        below = np.minimum(temperature - points[0], 0.0) * values[0]
        above = np.maximum(temperature - points[-1], 0.0) * values[-1]
        if points.size == 1:
            return below + above
        segment_integrals = np.diff(points) * (values[1:] + values[:-1]) / 2.0
        at_points = np.concatenate([[0.0], np.cumsum(segment_integrals)])
        slopes = np.diff(values) / np.diff(points)
        inside = np.clip(temperature, points[0], points[-1])
        segment = np.clip(np.searchsorted(points, inside, side="right") - 1, 0, points.size - 2)
        offset = inside - points[segment]
        within = at_points[segment] + offset * (values[segment] + 0.5 * slopes[segment] * offset)
        return within + below + above

    def integral(self, lower: float | np.ndarray, upper: float | np.ndarray) -> np.ndarray:
        """The integral of the property over temperature from `lower` to `upper`."""
        return self.antiderivative(upper) - self.antiderivative(lower)


TableLike = TemperatureTable | float


def as_table(value: TableLike) -> TemperatureTable:
    """A table as it is, a plain number as a table that is constant at every temperature."""
    if isinstance(value, TemperatureTable):
        return value
    return TemperatureTable([ZERO_CELSIUS], [float(value)])  # one point: constant everywhere


def thermal_strain(cte: TableLike, temperature: float | np.ndarray, reference_temperature: float,
                   kind: Literal["secant", "instantaneous"]) -> np.ndarray:
    """The linear thermal strain at `temperature` (the Mandel eigenstrain is it times IDENTITY).

    instantaneous: `cte` is alpha(T) = d(strain)/dT; the strain is the integral of alpha from
        reference_temperature to temperature (exact for the piecewise-linear table).
    secant: `cte` is alpha_sec(T), the mean coefficient from reference_temperature (how
        handbooks and Abaqus tabulate it); the strain is alpha_sec(T) (T - reference_temperature).

    `kind` has no default: which of the two a datasheet gives is the usual source of error.
    Both give the strain relative to the reference temperature. The strain between any two
    temperatures (from a stress-free temperature other than the reference) is the difference of
    two calls: with a secant table it is not alpha_sec(T) (T - T_stress_free).
    """
    table = as_table(cte)
    temperature = np.asarray(temperature, dtype=float)
    if kind == "instantaneous":
        return table.integral(reference_temperature, temperature)
    if kind == "secant":
        return table(temperature) * (temperature - reference_temperature)
    raise ValueError(f"kind must be 'secant' or 'instantaneous', got {kind!r}")


def secant_from_instantaneous(cte: TableLike, reference_temperature: float,
                              temperatures: Sequence[float]) -> TemperatureTable:
    """The secant table alpha_sec(T) = (1/(T - T_ref)) integral_{T_ref}^{T} alpha dT, at the
    given temperatures; alpha(T_ref) at the reference itself (the limit)."""
    table = as_table(cte)
    temperatures = np.asarray(temperatures, dtype=float)
    span = temperatures - reference_temperature
    at_reference = span == 0.0
    mean = table.integral(reference_temperature, temperatures) / np.where(at_reference, 1.0, span)
    return TemperatureTable(temperatures, np.where(at_reference, table(temperatures), mean))


def _per_point(value: float | np.ndarray, n_points: int) -> np.ndarray:
    """A scalar or per-point value as a fresh (n_points,) array."""
    return np.broadcast_to(np.asarray(value, dtype=float), (n_points,)).astype(float)


def _start_temperature(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The step's start temperature; one left unknown (NaN, first step) counts as the end."""
    return np.where(np.isnan(start), end, start)


def _mean_decay(x: np.ndarray) -> np.ndarray:
    """(1 - exp(-x)) / x, the mean of exp(-s) over s in [0, x]: 1 at x = 0."""
    positive = x > 0.0
    return np.where(positive, -np.expm1(-x) / np.where(positive, x, 1.0), 1.0)


# A rate beyond e^700 would overflow; it means "instantaneous" or "frozen" anyway.
_LOG_RATE_LIMIT = 700.0


def _integrate_rate(log_rate: Callable[[np.ndarray], np.ndarray], dt: float,
                    start_temperature: np.ndarray, end_temperature: np.ndarray,
                    temperature_substep: float) -> np.ndarray:
    """The integral over a step of a rate that depends on temperature only, the temperature
    linear in time within the step (the driver's ramps and holds).

    The step is cut into equal sub-intervals of at most temperature_substep (K, the same
    count at every point); on each, ln(rate) is taken linear in time: the sub-interval
    length times the logarithmic mean of its end rates, the larger one factored out so that
    nothing overflows or divides 0 by 0. That is exact on holds and for an Arrhenius rate
    when 1/T is linear in time, second order in the sub-interval along linear ramps (the
    rule of solver/physics/kinetics.py). The mid-step rate would be no better in order but far worse
    when the rate changes by decades within a step, as WLF's a_T does near T_g (a decade per
    3-5 K): over a 10 K step just above T_g it gives 0.30 of the reduced time, the
    logarithmic mean 0.89, with 1 K sub-intervals 0.998.
    """
    largest_change = np.max(np.abs(end_temperature - start_temperature), initial=0.0)
    pieces = max(1, int(np.ceil(largest_change / temperature_substep - 1e-9)))
    fractions = np.linspace(0.0, 1.0, pieces + 1)
    temperatures = (start_temperature[:, None]
                    + (end_temperature - start_temperature)[:, None] * fractions)
    log_rates = np.clip(log_rate(temperatures), -_LOG_RATE_LIMIT, _LOG_RATE_LIMIT)
    lower, upper = log_rates[:, :-1], log_rates[:, 1:]
    integrals = np.exp(np.maximum(lower, upper)) * _mean_decay(np.abs(upper - lower))
    return dt / pieces * integrals.sum(axis=1)


# --- The common interface --------------------------------------------------------------------


class MaterialModel(Protocol):
    def initial_state(self, n_points: int,
                      temperature: float | np.ndarray | None = None) -> State:
        """The stress-free state of n_points points. `temperature` is where the history starts
        (K); left out, the first step takes its end temperature as its start."""
        ...

    def update(self, strain: np.ndarray, eigenstrain: np.ndarray,
               temperature: float | np.ndarray, dt: float,
               state: State) -> tuple[np.ndarray, np.ndarray, State]:
        """(stress (N, 6), tangent d(stress)/d(strain) (N, 6, 6), end-of-step state) from the
        end-of-step total strain and eigenstrain (N, 6; the eigenstrain may be anything that
        broadcasts), temperature (K) and time step (s), and the start-of-step state."""
        ...


# --- Linear thermo-elasticity ----------------------------------------------------------------


class LinearThermoElastic:
    """stress = C(T) : (strain - eigenstrain), isotropic, E and nu tabulated in temperature."""

    def __init__(self, youngs_modulus: TableLike, poisson_ratio: TableLike):
        self.youngs_modulus = as_table(youngs_modulus)
        self.poisson_ratio = as_table(poisson_ratio)

    def initial_state(self, n_points: int,
                      temperature: float | np.ndarray | None = None) -> State:
        return {}  # elasticity remembers nothing

    def update(self, strain, eigenstrain, temperature, dt, state):
        strain = np.asarray(strain, dtype=float)
        end_temperature = _per_point(temperature, strain.shape[0])
        stiffness = isotropic_stiffness(self.youngs_modulus(end_temperature),
                                        self.poisson_ratio(end_temperature))
        stress = np.einsum("nij,nj->ni", stiffness, strain - eigenstrain)
        return stress, stiffness, {}


# --- Viscoelasticity -------------------------------------------------------------------------


class ShiftFunction(Protocol):
    def log_shift(self, temperature: np.ndarray) -> np.ndarray:
        """ln a_T: a relaxation time at T is a_T times the one at the reference temperature."""
        ...


@dataclass(frozen=True)
class ArrheniusShift:
    """ln a_T = Ea/R (1/T - 1/T_ref)."""

    activation_energy: float  # J/mol
    reference_temperature: float  # K

    def log_shift(self, temperature):
        inverse_temperature = 1.0 / np.asarray(temperature, dtype=float)
        return (self.activation_energy / GAS_CONSTANT
                * (inverse_temperature - 1.0 / self.reference_temperature))


@dataclass(frozen=True)
class WLFShift:
    """Williams-Landel-Ferry above the glass transition, Arrhenius below it.

    log10 a_T = -C1 (T - T_ref) / (C2 + T - T_ref) for T >= T_g. WLF describes free-volume
    controlled relaxation in the rubbery/transition range, roughly T_g to T_g + 100 K, and is
    singular at T = T_ref - C2; below T_g the glass relaxes with an Arrhenius law,
    ln a_T = ln a_T(T_g) + Ea/R (1/T - 1/T_g), continuous at T_g. glass_transition defaults to
    the reference temperature (the usual choice with the "universal" C1 = 17.44,
    C2 = 51.6 K referenced to T_g); glassy_activation_energy defaults to the WLF apparent
    activation energy at T_g, R T_g^2 d(ln a_T)/dT, so the slope is continuous too.
    """

    c1: float
    c2: float  # K
    reference_temperature: float  # K
    glass_transition: float | None = None  # K
    glassy_activation_energy: float | None = None  # J/mol

    def __post_init__(self):
        glass_transition = self.glass_transition
        if glass_transition is None:
            glass_transition = self.reference_temperature
            object.__setattr__(self, "glass_transition", glass_transition)
        distance = self.c2 + glass_transition - self.reference_temperature
        if distance <= 0.0:
            raise ValueError("WLF is singular at T = T_ref - C2: the glass transition must lie "
                             "above it")
        if self.glassy_activation_energy is None:
            slope = np.log(10.0) * self.c1 * self.c2 / distance**2  # d(ln a_T)/dT at T_g
            object.__setattr__(self, "glassy_activation_energy",
                               GAS_CONSTANT * glass_transition**2 * slope)

    def log_shift(self, temperature):
        temperature = np.asarray(temperature, dtype=float)
        rubbery = np.maximum(temperature, self.glass_transition) - self.reference_temperature
        wlf = -np.log(10.0) * self.c1 * rubbery / (self.c2 + rubbery)
        glassy = (self.glassy_activation_energy / GAS_CONSTANT
                  * (1.0 / np.minimum(temperature, self.glass_transition)
                     - 1.0 / self.glass_transition))
        return wlf + glassy


class GeneralizedMaxwell:
    """Generalized Maxwell (Prony series) viscoelasticity, thermorheologically simple.

    Relaxation: C(xi) = C0 (g_inf + sum_i g_i exp(-xi/tau_i)), g_inf = 1 - sum_i g_i, in the
    reduced time xi (d_xi = dt / a_T). The bulk and the shear parts relax with the same
    normalized series, so E(t) relaxes and nu stays constant. The hereditary integral acts on
    the instantaneous stress sigma0 = C0(T) : (strain - eigenstrain); the recursive update
    (Taylor, Pister & Goudreau 1970; Simo & Hughes 1998, ch. 10) is exact when sigma0 is linear
    in reduced time within a step, and second order otherwise. The reduced time of a step
    integrates 1/a_T along the step's temperature ramp (_integrate_rate).
    """

    def __init__(self, youngs_modulus: TableLike, poisson_ratio: TableLike,
                 prony: Sequence[tuple[float, float]], shift: ShiftFunction | None = None,
                 temperature_substep: float = 1.0):
        """youngs_modulus: the instantaneous (glassy) modulus E0; prony: (g_i, tau_i [s] at the
        shift's reference temperature); shift: None for a temperature-independent material;
        temperature_substep (K): the largest temperature change over which the reduced time
        is integrated with ln a_T linear in time (_integrate_rate)."""
        self.youngs_modulus = as_table(youngs_modulus)
        self.poisson_ratio = as_table(poisson_ratio)
        terms = np.asarray(prony, dtype=float).reshape(-1, 2)
        self.weights, self.relaxation_times = terms[:, 0], terms[:, 1]
        self.long_term_weight = 1.0 - self.weights.sum()
        if np.any(self.weights <= 0.0) or self.long_term_weight < 0.0:
            raise ValueError("Prony weights must be positive and sum to at most 1")
        if np.any(self.relaxation_times <= 0.0):
            raise ValueError("relaxation times must be positive")
        self.shift = shift
        self.temperature_substep = temperature_substep

    @classmethod
    def from_moduli(cls, long_term_modulus: float, poisson_ratio: TableLike,
                    terms: Sequence[tuple[float, float]], shift: ShiftFunction | None = None,
                    temperature_substep: float = 1.0) -> GeneralizedMaxwell:
        """From E_inf and Prony moduli (E_i, tau_i): E0 = E_inf + sum E_i, g_i = E_i / E0."""
        terms = np.asarray(terms, dtype=float).reshape(-1, 2)
        instantaneous = long_term_modulus + terms[:, 0].sum()
        prony = np.column_stack([terms[:, 0] / instantaneous, terms[:, 1]])
        return cls(instantaneous, poisson_ratio, prony, shift, temperature_substep)

    def initial_state(self, n_points, temperature=None):
        return {
            "instantaneous_stress": np.zeros((n_points, 6)),  # sigma0 at the step's start
            "viscous_stress": np.zeros((n_points, self.weights.size, 6)),  # h_i
            "temperature": _per_point(np.nan if temperature is None else temperature, n_points),
            # d(sigma0)/d(xi) over the last step, and that step's reduced time, for
            # time_error; unknown (NaN) before the first step that took time
            "instantaneous_slope": np.full((n_points, 6), np.nan),
            "reduced_step": np.full(n_points, np.nan),
        }

    def time_error(self, start: State, end: State) -> np.ndarray:
        """An estimate (Pa, per point) of the local error of the step from `start` to `end`.

        The recursive update is exact when sigma0 is linear in reduced time within the step.
        With sigma0 quadratic through the last two steps, d(sigma0)/d(xi) = a + b (s - dxi/2)
        with b = 2 (a_end - a_start) / (dxi_end + dxi_start); the update misses, per term,
        g_i b integral_0^dxi exp(-(dxi - s)/tau_i) (s - dxi/2) ds
        = g_i b tau_i^2 phi(dxi/tau_i), phi(x) = x/2 - 1 + exp(-x) (1 + x/2) (x^3/12 for
        small x: the error is third order per step). Zero where either step is unknown.
        """
        reduced_steps = end["reduced_step"][:, None] / self.relaxation_times  # (N, terms)
        x = reduced_steps
        phi = np.where(x < 1e-3, x**3 / 12.0 - x**4 / 24.0,
                       x / 2.0 - 1.0 + np.exp(-x) * (1.0 + x / 2.0))
        span = 0.5 * (end["reduced_step"] + start["reduced_step"])
        curvature = ((end["instantaneous_slope"] - start["instantaneous_slope"])
                     / np.where(span > 0.0, span, 1.0)[:, None])
        known = np.isfinite(curvature).all(axis=1) & (span > 0.0)
        missed = (self.weights * self.relaxation_times**2 * phi).sum(axis=1)[:, None] * curvature
        return np.where(known, np.linalg.norm(np.where(known[:, None], missed, 0.0), axis=1),
                        0.0)

    output_variables = ("viscous_stress_norm",)

    def output(self, state: State) -> dict[str, np.ndarray]:
        """Per-point scalars to write: the norm of the relaxing stress sum_i h_i (Pa), the
        part of the stress the hold can still relax."""
        return {"viscous_stress_norm": np.linalg.norm(state["viscous_stress"].sum(axis=1),
                                                      axis=1)}

    def update(self, strain, eigenstrain, temperature, dt, state):
        strain = np.asarray(strain, dtype=float)
        end_temperature = _per_point(temperature, strain.shape[0])
        reduced_dt = np.full_like(end_temperature, dt)
        if self.shift is not None:  # d_xi = dt / a_T
            start_temperature = _start_temperature(state["temperature"], end_temperature)
            reduced_dt = _integrate_rate(lambda t: -self.shift.log_shift(t), dt,
                                         start_temperature, end_temperature,
                                         self.temperature_substep)
        reduced_steps = reduced_dt[:, None] / self.relaxation_times  # (N, terms)
        step_weights = self.weights * _mean_decay(reduced_steps)

        stiffness = isotropic_stiffness(self.youngs_modulus(end_temperature),
                                        self.poisson_ratio(end_temperature))
        instantaneous_stress = np.einsum("nij,nj->ni", stiffness, strain - eigenstrain)
        stress_change = instantaneous_stress - state["instantaneous_stress"]
        viscous_stress = (np.exp(-reduced_steps)[:, :, None] * state["viscous_stress"]
                          + step_weights[:, :, None] * stress_change[:, None, :])
        stress = self.long_term_weight * instantaneous_stress + viscous_stress.sum(axis=1)
        tangent = (self.long_term_weight + step_weights.sum(axis=1))[:, None, None] * stiffness
        took_time = reduced_dt > 0.0
        slope = np.where(took_time[:, None],
                         stress_change / np.where(took_time, reduced_dt, 1.0)[:, None],
                         state["instantaneous_slope"])
        return stress, tangent, {
            "instantaneous_stress": instantaneous_stress,
            "viscous_stress": viscous_stress,
            "temperature": end_temperature,
            "instantaneous_slope": slope,
            "reduced_step": np.where(took_time, reduced_dt, state["reduced_step"]),
        }


# --- Plasticity ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recrystallization:
    """JMAK annealing (static recrystallization) of a deformed metal, isokinetic additivity.

    X = 1 - exp(-S^n), dS/dt = k(T) = k0 exp(-Q/(R T)); S (the state's
    recrystallization_progress) integrates the rate along any temperature history
    (_integrate_rate). k0 is given
    through the half time at one temperature: k0 = (ln 2)^(1/n) / t_half exp(Q/(R T_half)).
    """

    annealed_yield_stress: TableLike  # Pa, of the fully recrystallized metal
    half_time: float  # s, isothermal time to X = 1/2 at half_time_temperature
    half_time_temperature: float  # K
    activation_energy: float  # J/mol, Q
    exponent: float  # Avrami exponent n
    temperature_substep: float = 1.0  # K, see _integrate_rate

    def __post_init__(self):
        object.__setattr__(self, "annealed_yield_stress", as_table(self.annealed_yield_stress))

    def log_rate(self, temperature: float | np.ndarray) -> np.ndarray:
        """ln k(T), k in 1/s."""
        inverse_temperature = 1.0 / np.asarray(temperature, dtype=float)
        return (np.log(np.log(2.0) ** (1.0 / self.exponent) / self.half_time)
                - self.activation_energy / GAS_CONSTANT
                * (inverse_temperature - 1.0 / self.half_time_temperature))

    def fraction(self, progress: np.ndarray) -> np.ndarray:
        """The recrystallized fraction X for the progress S."""
        return -np.expm1(-np.asarray(progress, dtype=float) ** self.exponent)


class J2Plasticity:
    """Rate-independent von Mises plasticity, small strain, radial return.

    Linear isotropic hardening (yield radius sigma_y + H q) and linear (Prager) kinematic
    hardening (back stress rate 2/3 K_kin d(plastic strain)). With `recrystallization`, the
    yield stress is (1 - X) sigma_y(T) + X sigma_y,annealed(T), and each step the hardening
    strain q and the back stress are scaled by (1 - X_end)/(1 - X_start): the recrystallized
    part of the metal loses the dislocation structure that carried them, and later plastic
    flow hardens it afresh. E, nu and the yield stresses are taken at the end-of-step
    temperature; the state keeps the plastic strain, so the elastic response does not depend
    on the temperature path.
    """

    def __init__(self, youngs_modulus: TableLike, poisson_ratio: TableLike,
                 yield_stress: TableLike, hardening_modulus: float = 0.0,
                 kinematic_modulus: float = 0.0,
                 recrystallization: Recrystallization | None = None):
        """yield_stress: the initial (as deformed, if recrystallization is given) yield stress
        in uniaxial tension; hardening_modulus H and kinematic_modulus K_kin: the uniaxial
        slopes d(stress)/d(plastic strain), so the elastic-plastic tangent is
        E (H + K_kin) / (E + H + K_kin)."""
        self.youngs_modulus = as_table(youngs_modulus)
        self.poisson_ratio = as_table(poisson_ratio)
        self.yield_stress = as_table(yield_stress)
        self.hardening_modulus = float(hardening_modulus)
        self.kinematic_modulus = float(kinematic_modulus)
        self.recrystallization = recrystallization

    def initial_state(self, n_points, temperature=None):
        return {
            "plastic_strain": np.zeros((n_points, 6)),
            "hardening_strain": np.zeros(n_points),  # q: isotropic hardening variable
            "back_stress": np.zeros((n_points, 6)),
            "equivalent_plastic_strain": np.zeros(n_points),  # accumulated, for output only
            "recrystallization_progress": np.zeros(n_points),  # S
            "temperature": _per_point(np.nan if temperature is None else temperature, n_points),
        }

    output_variables = ("equivalent_plastic_strain", "recrystallized_fraction")

    def output(self, state: State) -> dict[str, np.ndarray]:
        """Per-point scalars to write: accumulated equivalent plastic strain, and X."""
        return {"equivalent_plastic_strain": state["equivalent_plastic_strain"],
                "recrystallized_fraction": self.recrystallized_fraction(state)}

    def recrystallized_fraction(self, state: State) -> np.ndarray:
        """X at every point of a state (0 without recrystallization)."""
        if self.recrystallization is None:
            return np.zeros_like(state["recrystallization_progress"])
        return self.recrystallization.fraction(state["recrystallization_progress"])

    def _anneal(self, state: State, end_temperature: np.ndarray, dt: float):
        """(progress S, yield stress, surviving fraction of hardening) at the step's end."""
        start_progress = state["recrystallization_progress"]
        deformed_yield = self.yield_stress(end_temperature)
        rex = self.recrystallization
        if rex is None:
            return start_progress.copy(), deformed_yield, np.ones_like(start_progress)
        start_temperature = _start_temperature(state["temperature"], end_temperature)
        progress = start_progress + _integrate_rate(rex.log_rate, dt, start_temperature,
                                                    end_temperature, rex.temperature_substep)
        recrystallized = rex.fraction(progress)
        yield_stress = ((1.0 - recrystallized) * deformed_yield
                        + recrystallized * rex.annealed_yield_stress(end_temperature))
        # (1 - X_end) / (1 - X_start), written so that it stays finite as X -> 1
        surviving = np.exp(start_progress**rex.exponent - progress**rex.exponent)
        return progress, yield_stress, surviving

    def update(self, strain, eigenstrain, temperature, dt, state):
        strain = np.asarray(strain, dtype=float)
        end_temperature = _per_point(temperature, strain.shape[0])
        progress, yield_stress, surviving = self._anneal(state, end_temperature, dt)
        hardening_strain = surviving * state["hardening_strain"]
        back_stress = surviving[:, None] * state["back_stress"]

        youngs_modulus = self.youngs_modulus(end_temperature)
        poisson_ratio = self.poisson_ratio(end_temperature)
        bulk_modulus = elasticity.bulk_modulus(youngs_modulus, poisson_ratio)[:, None]
        shear_modulus = elasticity.shear_modulus(youngs_modulus, poisson_ratio)[:, None]
        hardening = self.hardening_modulus + self.kinematic_modulus

        elastic_strain_trial = strain - eigenstrain - state["plastic_strain"]
        volumetric_stress = bulk_modulus * (elastic_strain_trial @ IDENTITY)[:, None] * IDENTITY
        deviatoric_trial = 2.0 * shear_modulus * (elastic_strain_trial @ DEVIATORIC_PROJECTOR)
        relative_trial = deviatoric_trial - back_stress
        relative_norm = np.linalg.norm(relative_trial, axis=1)[:, None]
        flow_radius = np.sqrt(2.0 / 3.0) * (yield_stress
                                            + self.hardening_modulus * hardening_strain)
        overstress = relative_norm - flow_radius[:, None]
        plastic = overstress > 0.0
        # Delta gamma: linear hardening makes the consistency condition linear, solved exactly.
        multiplier = np.where(plastic, overstress, 0.0) / (2.0 * shear_modulus
                                                           + 2.0 / 3.0 * hardening)
        direction = relative_trial / np.where(relative_norm > 0.0, relative_norm, 1.0)

        stress = volumetric_stress + deviatoric_trial - 2.0 * shear_modulus * multiplier * direction
        # Consistent tangent (Simo & Hughes 1998, box 3.2, with the kinematic modulus added):
        # 3K P_vol + 2G theta P_dev - 2G theta_bar n (x) n.
        shrink = 2.0 * shear_modulus * multiplier / np.where(relative_norm > 0.0,
                                                             relative_norm, 1.0)
        theta = 1.0 - shrink
        theta_bar = np.where(plastic, 2.0 * shear_modulus / (2.0 * shear_modulus
                                                             + 2.0 / 3.0 * hardening) - shrink,
                             0.0)
        tangent = (3.0 * bulk_modulus[:, :, None] * VOLUMETRIC_PROJECTOR
                   + (2.0 * shear_modulus * theta)[:, :, None] * DEVIATORIC_PROJECTOR
                   - (2.0 * shear_modulus * theta_bar)[:, :, None]
                   * direction[:, :, None] * direction[:, None, :])

        plastic_strain_increment = multiplier * direction
        equivalent_increment = np.sqrt(2.0 / 3.0) * multiplier[:, 0]
        return stress, tangent, {
            "plastic_strain": state["plastic_strain"] + plastic_strain_increment,
            "hardening_strain": hardening_strain + equivalent_increment,
            "back_stress": back_stress + 2.0 / 3.0 * self.kinematic_modulus
            * plastic_strain_increment,
            "equivalent_plastic_strain": state["equivalent_plastic_strain"]
            + equivalent_increment,
            "recrystallization_progress": progress,
            "temperature": end_temperature,
        }


def electrodeposited_copper() -> J2Plasticity:
    """Electrodeposited Cu foil that anneals in the sintering hold. PLACEHOLDER data.

    E 110-130 GPa (120 GPa, as in solver/materials/materials.toml), nu 0.34; annealed yield
    30-70 MPa; electrodeposited foil UTS 390-690 MPa; softening (recrystallization) from about
    180 C, a 400 C hold anneals the foil. Placeholders, to be replaced by measurements on the
    actual foil: the as-deposited yield 350 MPa at 25 C (below the lowest UTS) falling to
    250 MPa at 400 C; annealed yield 60 MPa at 25 C falling to 30 MPa at 400 C; hardening
    modulus 500 MPa; E independent of temperature; JMAK n = 2, Q = 100 kJ/mol (of the order of
    grain-boundary diffusion in Cu), half recrystallized after 1 h at 180 C: then 400 C
    anneals it within seconds and 25 C leaves it untouched for years.
    """
    room, hold = ZERO_CELSIUS + 25.0, ZERO_CELSIUS + 400.0
    return J2Plasticity(
        youngs_modulus=120e9,
        poisson_ratio=0.34,
        yield_stress=TemperatureTable([room, hold], [350e6, 250e6]),
        hardening_modulus=500e6,
        recrystallization=Recrystallization(
            annealed_yield_stress=TemperatureTable([room, hold], [60e6, 30e6]),
            half_time=3600.0,
            half_time_temperature=ZERO_CELSIUS + 180.0,
            activation_energy=100e3,
            exponent=2.0,
        ),
    )
