"""Furnace-scale heat transfer (solver/physics/furnace.py) against closed forms and ODE solutions.

Each check states its tolerance on the dimensionless temperature
theta = (T - T_furnace) / (T_start - T_furnace) (or the step fraction, for the erf case),
and a time-step study: backward Euler converges at first order in dt.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI
from pydantic import ValidationError
from scipy import optimize, special
from scipy.integrate import solve_ivp

from solver.case import load_case_text
from solver.case.units import SI_VALUES
from solver.errors import CaseError
from solver.physics.furnace import STEFAN_BOLTZMANN, FurnaceSection, _step_times, solve_furnace

REPO = Path(__file__).resolve().parents[1]
START, FURNACE = 300.0, 400.0  # K: the body's start and the furnace after its step
HEAT_CAPACITY = 1.0e6  # J/m^3/K: density 1000 kg/m^3 x specific heat 1000 J/kg/K


def section(**values) -> FurnaceSection:
    """A section from SI values, with a diffusivity of k / (rho c) = 1e-6 m^2/s at k = 1."""
    defaults = {"density": 1000.0, "specific_heat": 1000.0, "k_through": 1.0,
                "k_along": 1.0, "emissivity": 0.0}
    return FurnaceSection.model_validate({**defaults, **values}, context=SI_VALUES)


def step_to(temperature):
    """A furnace that jumps from START to `temperature` just after t = 0."""
    return lambda t: START if t <= 0.0 else temperature


def slab_1d(thickness, mesh_size, h, **values) -> FurnaceSection:
    """A stack one element wide with insulated edges: 1D conduction through its thickness."""
    return section(geometry="stack", thickness=thickness, width=2 * mesh_size,
                   mesh_size=mesh_size, heat_transfer_coefficient=h, insulated=["edges"],
                   **values)


def first_order_rate(time_steps, errors) -> float:
    return float(np.polyfit(np.log(time_steps), np.log(errors), 1)[0])


# --- 1D transient conduction ---------------------------------------------------------------


def test_semi_infinite_body_follows_the_erf_solution():
    """A suddenly imposed surface temperature (h huge: Biot h sqrt(alpha t)/k ~ 3e4):
    (T - T0)/(Ts - T0) = erfc(x / 2 sqrt(alpha t)); the slab is 0.4 m thick and the heat
    penetrates about 4 sqrt(alpha t) = 0.13 m by 1000 s, so it is semi-infinite."""
    depths = [0.005, 0.01, 0.02, 0.04]
    probes = {f"depth_{i}": (0.001, depth) for i, depth in enumerate(depths)}
    slab = slab_1d(0.4, 0.001, 1.0e7, probes=probes)
    t_end, alpha = 1000.0, 1.0e-6
    errors, time_steps = [], [40.0, 20.0, 10.0, 5.0]
    for dt in time_steps:
        history = solve_furnace(slab, step_to(FURNACE), t_end, dt, MPI.COMM_WORLD)
        late = history.times >= 200.0  # the first steps carry backward Euler's start-up error
        error = 0.0
        for name, depth in zip(probes, depths, strict=True):
            fraction = (history.temperatures[name][late] - START) / (FURNACE - START)
            exact = special.erfc(depth / (2 * np.sqrt(alpha * history.times[late])))
            error = max(error, np.abs(fraction - exact).max())
        errors.append(error)
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


# k and c both proportional to f(T) = 1 + (T - START) / 100 K (1 to 2 over the step): the
# diffusivity is constant and the Kirchhoff transform U = integral of f dT obeys the linear
# heat equation, so (U(T) - U(T0)) / (U(Ts) - U(T0)) follows the erfc of constant properties.
SCALED_TABLE_KELVIN = [START, FURNACE]


def test_temperature_dependent_k_and_c_follow_the_kirchhoff_transformed_erf():
    """The erf body with k(T) = f(T) W/m/K and c(T) = 1000 f(T) J/kg/K, tables evaluated at
    the previous step's temperature: the transformed step fraction within 1% at dt = 5 s,
    first order in dt (the lagging adds an O(dt) error, like backward Euler's)."""
    depths = [0.005, 0.01, 0.02, 0.04]
    probes = {f"depth_{i}": (0.001, depth) for i, depth in enumerate(depths)}
    conductivity = {"temperatures": SCALED_TABLE_KELVIN, "values": [1.0, 2.0]}
    specific_heat = {"temperatures": SCALED_TABLE_KELVIN, "values": [1000.0, 2000.0]}
    slab = slab_1d(0.4, 0.001, 1.0e7, probes=probes, k_through=conductivity,
                   k_along=conductivity, specific_heat=specific_heat)
    shape = slab.k_through  # the TemperatureTable of f(T), whose integral is U

    def transformed(temperature):
        return shape.integral(START, temperature) / shape.integral(START, FURNACE)

    t_end, alpha = 1000.0, 1.0e-6
    errors, time_steps = [], [40.0, 20.0, 10.0, 5.0]
    for dt in time_steps:
        history = solve_furnace(slab, step_to(FURNACE), t_end, dt, MPI.COMM_WORLD)
        late = history.times >= 200.0
        error = 0.0
        for name, depth in zip(probes, depths, strict=True):
            exact = special.erfc(depth / (2 * np.sqrt(alpha * history.times[late])))
            error = max(error, np.abs(transformed(history.temperatures[name][late])
                                      - exact).max())
        errors.append(error)
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


def test_small_body_with_temperature_dependent_c_follows_the_ode():
    """Lumped capacitance (Bi = 2.5e-4) with c(T) linear from 1000 to 3000 J/kg/K over
    300-400 K: rho c(T) dT/dt = h (A/V) (T_f - T) by solve_ivp; within 1% of T_f - T0 at
    dt = tau0/200 (tau0 at the start's c), first order in dt."""
    h = 10.0
    body = section(**SMALL_BODIES["stack"], k_through=200.0, k_along=200.0,
                   heat_transfer_coefficient=h, mesh_size=0.005,
                   specific_heat={"temperatures": ["300 K", "400 K"],
                                  "values": ["1000 J/kg/K", "3000 J/kg/K"]})
    tau = HEAT_CAPACITY / (h * SURFACE_PER_VOLUME)
    t_end = 6 * tau
    ode = solve_ivp(lambda t, T: h * SURFACE_PER_VOLUME * (FURNACE - T)
                    / (1000.0 * body.specific_heat(T)), (0.0, t_end), [START],
                    method="LSODA", rtol=1e-11, atol=1e-9, dense_output=True)
    errors, time_steps = [], [tau / 25, tau / 50, tau / 100, tau / 200]
    for dt in time_steps:
        history = solve_furnace(body, step_to(FURNACE), t_end, dt, MPI.COMM_WORLD)
        exact = ode.sol(history.times)[0]
        errors.append(max(np.abs(temperatures - exact).max() / (FURNACE - START)
                          for temperatures in history.temperatures.values()))
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


def test_constant_tables_give_the_scalar_result():
    """A table that is constant over the solution's range (flat, or clamped beyond its last
    point) gives the scalar property's history to round-off."""
    half = 0.05
    scalar = solve_furnace(slab_1d(2 * half, 0.002, 20.0), step_to(FURNACE), 2000.0, 100.0,
                           MPI.COMM_WORLD)
    tables = slab_1d(2 * half, 0.002, 20.0,
                     k_through={"temperatures": [200.0, 250.0, 290.0],
                                "values": [3.0, 2.0, 1.0]},
                     specific_heat={"temperatures": [250.0, 500.0],
                                    "values": [1000.0, 1000.0]})
    tabulated = solve_furnace(tables, step_to(FURNACE), 2000.0, 100.0, MPI.COMM_WORLD)
    for name, temperatures in scalar.temperatures.items():
        np.testing.assert_allclose(tabulated.temperatures[name], temperatures, rtol=1e-12)
    assert scalar.temperatures["centre"][-1] > START + 10.0  # the heat got in


def fourier_slab_theta(bi, fourier, x_over_l, terms=80):
    """Plane wall of half-thickness L, convection on both faces: the Fourier series."""
    roots = [optimize.brentq(lambda mu: mu * np.sin(mu) - bi * np.cos(mu),
                             n * np.pi + 1e-12, n * np.pi + np.pi / 2 - 1e-12)
             for n in range(terms)]
    theta = np.zeros(np.broadcast(fourier, x_over_l).shape)
    for mu in roots:
        coefficient = 4 * np.sin(mu) / (2 * mu + np.sin(2 * mu))
        theta = theta + coefficient * np.exp(-mu**2 * fourier) * np.cos(mu * x_over_l)
    return theta


def test_finite_slab_with_convection_follows_the_fourier_series():
    """Slab 2L = 0.1 m, Bi = hL/k = 1, to Fo = 1: surface, quarter and centre within 1%."""
    half, alpha, biot = 0.05, 1.0e-6, 1.0
    slab = slab_1d(2 * half, 0.0005, biot / half)
    positions = {"surface": 1.0, "quarter": 0.5, "centre": 0.0}  # x / L from the centre
    t_end = half**2 / alpha
    errors, time_steps = [], [100.0, 50.0, 25.0, 12.5]
    for dt in time_steps:
        history = solve_furnace(slab, step_to(FURNACE), t_end, dt, MPI.COMM_WORLD)
        late = history.times >= 0.1 * t_end
        fourier = alpha * history.times[late] / half**2
        error = 0.0
        for name, x_over_l in positions.items():
            theta = (history.temperatures[name][late] - FURNACE) / (START - FURNACE)
            error = max(error, np.abs(theta - fourier_slab_theta(biot, fourier, x_over_l)).max())
        errors.append(error)
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


def test_slow_ramp_lag_matches_the_quasi_steady_closed_form():
    """A furnace ramping at beta for 10 L^2/alpha: the slab's temperatures settle to
    T_f - beta rho c L (L (1 - (x/L)^2) / 2k + 1/h), a parabola below the furnace; the centre
    and surface lags within 1%. Backward Euler is exact for this linear-in-time state, so the
    time step does not matter; P1 nodal values of the 1D parabola are exact too."""
    half, beta, h = 0.05, 0.01, 20.0
    slab = slab_1d(2 * half, 0.001, h)
    t_end = 10 * half**2 / 1.0e-6
    history = solve_furnace(slab, lambda t: START + beta * t, t_end, 250.0, MPI.COMM_WORLD)
    surface_lag = beta * HEAT_CAPACITY * half / h
    centre_lag = surface_lag + beta * HEAT_CAPACITY * half**2 / 2.0
    assert history.lag("surface")[-1] == pytest.approx(surface_lag, rel=0.01)
    assert history.lag("centre")[-1] == pytest.approx(centre_lag, rel=0.01)
    assert history.max_lag() == pytest.approx(centre_lag, rel=0.01)


# --- Small bodies: lumped capacitance, radiation ---------------------------------------------

# Both bodies have a surface-to-volume ratio of 200 1/m: a 20 x 20 mm bar, and a ring of
# 10-30 mm radius, 20 mm long: A/V = 2/(r_out - r_in) + 2/width (the roll checks the r
# weighting of the axisymmetric forms).
SMALL_BODIES = {
    "stack": {"geometry": "stack", "thickness": 0.02, "width": 0.02},
    "roll": {"geometry": "roll", "inner_radius": 0.01, "outer_radius": 0.03, "width": 0.02},
}
SURFACE_PER_VOLUME = 200.0


@pytest.mark.parametrize("geometry", SMALL_BODIES)
def test_small_body_follows_lumped_capacitance(geometry):
    """h = 10, k = 200: Bi = h (V/A) / k = 2.5e-4. T = T_f + (T0 - T_f) exp(-t/tau),
    tau = rho c V / (h A), within 1% of T0 - T_f."""
    h = 10.0
    body = section(**SMALL_BODIES[geometry], k_through=200.0, k_along=200.0,
                   heat_transfer_coefficient=h, mesh_size=0.005)
    tau = HEAT_CAPACITY / (h * SURFACE_PER_VOLUME)
    errors, time_steps = [], [tau / 25, tau / 50, tau / 100, tau / 200]
    for dt in time_steps:
        history = solve_furnace(body, step_to(FURNACE), 3 * tau, dt, MPI.COMM_WORLD)
        exact = np.exp(-history.times / tau)
        errors.append(max(
            np.abs((temperatures - FURNACE) / (START - FURNACE) - exact).max()
            for temperatures in history.temperatures.values()))
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


@pytest.mark.parametrize("geometry", SMALL_BODIES)
def test_small_body_heated_by_radiation_follows_the_ode(geometry):
    """h = 0, emissivity 0.8, 300 -> 700 K: rho c dT/dt = eps sigma (A/V) (T_f^4 - T^4),
    integrated by solve_ivp; within 1% of T_f - T0, Newton in a few iterations per step."""
    emissivity, furnace = 0.8, 700.0
    body = section(**SMALL_BODIES[geometry], k_through=200.0, k_along=200.0,
                   heat_transfer_coefficient=0.0, emissivity=emissivity, mesh_size=0.005)
    rate = emissivity * STEFAN_BOLTZMANN * SURFACE_PER_VOLUME / HEAT_CAPACITY
    t_end = 600.0  # about 5 time constants at 700 K
    ode = solve_ivp(lambda t, T: rate * (furnace**4 - T**4), (0.0, t_end), [START],
                    method="LSODA", rtol=1e-11, atol=1e-9, dense_output=True)
    errors, time_steps = [], [24.0, 12.0, 6.0, 3.0]
    for dt in time_steps:
        history = solve_furnace(body, step_to(furnace), t_end, dt, MPI.COMM_WORLD)
        exact = ode.sol(history.times)[0]
        errors.append(max(np.abs(temperatures - exact).max() / (furnace - START)
                          for temperatures in history.temperatures.values()))
        assert history.newton_iterations <= 5 * (len(history.times) - 1)
    assert errors[-1] < 0.01, errors
    assert 0.8 < first_order_rate(time_steps, errors) < 1.2, errors


# --- A roll in a real schedule ---------------------------------------------------------------


def ramp_and_hold(rate=5.0 / 60.0, start=298.15, top=673.15):
    """5 K/min to 400 degC, then a hold: (furnace temperature function, ramp end)."""
    ramp_end = (top - start) / rate
    return (lambda t: min(start + rate * t, top)), ramp_end


def roll(**values) -> FurnaceSection:
    return FurnaceSection.model_validate({
        "geometry": "roll", "inner_radius": "40 mm", "outer_radius": "150 mm",
        "width": "300 mm", "mesh_size": "10 mm", **values})


def test_lag_through_the_wraps_grows_as_k_through_drops():
    """A wound roll, 5 K/min to 400 degC and a 2 h hold: the middle wrap trails the furnace
    more when the wraps conduct less (measured: 170, 195, 229 K for k_through = 2, 1,
    0.5 W/m/K; the lag cannot exceed the 375 K ramp, so it grows slower than 1/k_through),
    and less when heat runs faster along the wraps to the end faces."""
    furnace, ramp_end = ramp_and_hold()
    lags = {}
    for k_through, k_along in [(2.0, 40.0), (1.0, 40.0), (0.5, 40.0), (0.5, 400.0)]:
        history = solve_furnace(roll(k_through=k_through, k_along=k_along), furnace,
                                ramp_end + 7200.0, 300.0, MPI.COMM_WORLD,
                                breakpoints=[ramp_end])
        lags[k_through, k_along] = history.max_lag("middle")
        assert history.max_lag("middle") > history.max_lag("outer")
        assert history.temperatures["middle"].max() <= history.furnace.max() + 1e-6
    assert lags[2.0, 40.0] < lags[1.0, 40.0] < lags[0.5, 40.0]
    assert lags[0.5, 40.0] - lags[2.0, 40.0] > 40.0
    assert lags[0.5, 400.0] < lags[0.5, 40.0]


@pytest.mark.parametrize("ranks", [pytest.param(1), pytest.param(2, marks=pytest.mark.mpi)])
@pytest.mark.parametrize("emissivity", [0.0, 0.8])
def test_iterative_solver_gives_the_direct_histories(ranks, emissivity):
    """linear_solver = "iterative" (CG + BoomerAMG to 1e-8 of each step's residual) against
    LU, on a roll with and without radiation (then each step is one solve): the probe
    histories agree to the Krylov tolerance, 1e-8 relative (measured: 8e-11 without
    radiation and 2e-16 with on 1 rank; 1.1e-9 without radiation on 2 ranks, where
    BoomerAMG's coarsening follows the partition). On 1 and (mpi) on 2 ranks."""
    from solver.case.solver_section import SolverSettings

    if MPI.COMM_WORLD.size != ranks:
        pytest.skip(f"runs on {ranks} ranks")
    furnace, ramp_end = ramp_and_hold()
    coil = roll(mesh_size="8 mm", emissivity=emissivity)
    histories = {choice: solve_furnace(coil, furnace, ramp_end + 1800.0, 600.0,
                                       MPI.COMM_WORLD, breakpoints=[ramp_end],
                                       solver=SolverSettings(linear_solver=choice))
                 for choice in ("direct", "iterative")}
    direct, iterative = histories["direct"], histories["iterative"]
    worst = max(np.abs(iterative.temperatures[n] / direct.temperatures[n] - 1).max()
                for n in direct.temperatures)
    print(f"emissivity {emissivity}: iterative vs direct {worst:.3g}; Newton "
          f"{iterative.newton_iterations} vs {direct.newton_iterations}, "
          f"{len(direct.times) - 1} steps")
    assert worst < 1e-8


@pytest.mark.mpi
def test_probe_histories_are_the_same_on_every_number_of_ranks():
    """Under mpirun -n 2: the distributed solve gives each rank's serial solve to 1e-8."""
    furnace, ramp_end = ramp_and_hold()
    coil = roll(probes={"near_end": ["60 mm", "20 mm"]}, mesh_size="8 mm")
    args = (furnace, ramp_end + 1800.0, 600.0)
    distributed = solve_furnace(coil, *args, MPI.COMM_WORLD, breakpoints=[ramp_end])
    serial = solve_furnace(coil, *args, MPI.COMM_SELF, breakpoints=[ramp_end])
    np.testing.assert_array_equal(distributed.times, serial.times)
    for name, temperatures in serial.temperatures.items():
        np.testing.assert_allclose(distributed.temperatures[name], temperatures, rtol=1e-8)
    assert distributed.newton_iterations > len(distributed.times) - 1  # radiation: Newton


# --- The section, the history, the output ----------------------------------------------------


def test_section_reads_units_and_derives_defaults():
    coil = FurnaceSection.model_validate({
        "geometry": "roll", "inner_radius": "40 mm", "outer_radius": "0.15 m",
        "width": "30 cm", "heat_transfer_coefficient": "20 W/m^2/K",
        "k_through": "0.5 W/m/K", "time_step": "1 min"})
    assert coil.outer_radius == pytest.approx(0.15)
    assert coil.width == pytest.approx(0.3)
    assert coil.heat_transfer_coefficient == pytest.approx(20.0)
    assert coil.time_step == pytest.approx(60.0)
    assert coil.k_along == pytest.approx(40.0) and coil.density == pytest.approx(2300.0)
    assert coil.follow == "middle"
    assert coil.mesh_size == pytest.approx(min(0.11, 0.15) / 20)
    stack = FurnaceSection.model_validate({"geometry": "stack", "thickness": "50 mm",
                                           "width": "200 mm"})
    assert stack.follow == "centre"


@pytest.mark.parametrize("values, key, message", [
    ({"geometry": "roll", "width": 0.3, "outer_radius": 0.1}, "inner_radius", "required"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "inner_radius": 0.1},
     "inner_radius", "only used"),
    ({"geometry": "roll", "width": 0.3, "inner_radius": 0.1, "outer_radius": 0.05},
     "outer_radius", "larger than inner_radius"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "insulated": ["ends"]},
     "insulated[0]", "faces, edges"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "insulated": ["faces", "edges"]},
     "insulated", "at least one face"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "probes": {"p": [0.1, 0.2]}},
     "probes.p", "outside"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "follow": "middle"},
     "follow", "surface, quarter, centre"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "emissivity": 1.5},
     None, "between 0 and 1"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "heat_transfer_coefficient": "5 W/m/K"},
     None, "heat transfer coefficient"),
    ({"geometry": "stack", "width": 0.3, "thickness": 0.1, "heat_transfer_coefficient": 0,
      "emissivity": 0}, "heat_transfer_coefficient", "needs h > 0"),
])
def test_section_errors_name_the_key(values, key, message):
    with pytest.raises(ValidationError) as caught:
        FurnaceSection.model_validate(values)
    error = caught.value.errors()[0]
    if key is not None:
        assert error["ctx"]["key"] == key
    assert message in error["msg"]


def test_unsorted_table_is_a_one_line_case_error_naming_the_key():
    text = (REPO / "cases" / "furnace-roll.toml").read_text().replace(
        'width = "300 mm"\nfollow',
        'width = "300 mm"\nk_through = { temperatures = ["400 degC", "20 degC"], '
        'values = ["0.8 W/(m*K)", "0.5 W/(m*K)"] }\nfollow')
    assert "k_through" in text
    with pytest.raises(CaseError) as caught:
        load_case_text(text, file="furnace-roll.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert "furnace.k_through" in message and "must increase" in message, message


def test_section_reads_tables_with_units():
    coil = roll(k_through={"temperatures": ["20 degC", "400 degC"],
                           "values": ["0.5 W/(m*K)", "0.8 W/(m*K)"]},
                specific_heat={"temperatures": ["20 degC"], "values": ["0.6 kJ/kg/K"]})
    np.testing.assert_allclose(coil.k_through.temperatures, [293.15, 673.15])
    assert coil.k_through(483.15) == pytest.approx(0.65)
    assert coil.specific_heat(1000.0) == pytest.approx(600.0)


def test_steps_land_on_breakpoints_and_history_is_written_as_csv(tmp_path):
    times = _step_times(1000.0, 120.0, [250.0, 250.0 + 1e-12, 2000.0])
    assert times[0] == 0.0 and times[-1] == 1000.0 and 250.0 in times
    assert np.diff(times).max() <= 120.0 + 1e-9 and len(times) == 1 + 3 + 7

    furnace, ramp_end = ramp_and_hold()
    history = solve_furnace(roll(mesh_size="20 mm", emissivity=0.0), furnace, 3600.0, 600.0,
                            MPI.COMM_WORLD, breakpoints=[ramp_end])
    assert history.temperature_at(history.times[3]) == pytest.approx(
        history.temperatures["middle"][3])
    assert history.max_lag() == pytest.approx(history.lag("middle").max())
    summary = history.summary()
    assert summary["positions"]["middle"]["max_lag"] == pytest.approx(history.max_lag())
    if MPI.COMM_WORLD.rank == 0:
        path = tmp_path / "furnace.csv"
        history.write_csv(path)
        rows = list(csv.reader(path.open()))
        assert rows[0] == ["time_s", "furnace_K", "inner_K", "middle_K", "outer_K"]
        assert len(rows) == len(history.times) + 1
        assert float(rows[-1][3]) == pytest.approx(history.temperatures["middle"][-1])
