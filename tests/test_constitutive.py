"""Material models at material points, each against a closed form (tolerances stated)."""

import copy
import dataclasses

import numpy as np
import pytest
from scipy.special import exp1

from solver.case import load_case_text
from solver.errors import CaseError
from solver.materials.constitutive import (
    GAS_CONSTANT,
    IDENTITY,
    ZERO_CELSIUS,
    ArrheniusShift,
    GeneralizedMaxwell,
    J2Plasticity,
    LinearThermoElastic,
    TemperatureTable,
    WLFShift,
    electrodeposited_copper,
    from_mandel,
    isotropic_stiffness,
    secant_from_instantaneous,
    thermal_strain,
    to_mandel,
)

ROOM = ZERO_CELSIUS + 25.0
RNG_SEED = 20240604

# Polyimide-like viscoelastic constants (test values, not material data).
GLASSY_MODULUS, PI_POISSON = 2.5e9, 0.34
# Copper-like plastic constants (test values).
CU_MODULUS, CU_POISSON, CU_CTE = 120e9, 0.34, 17e-6


def poisson_strain(axial: np.ndarray, poisson_ratio: float) -> np.ndarray:
    """(N, 6) strain of uniaxial xx stress in an isotropic material of constant nu."""
    return np.outer(np.atleast_1d(axial), [1.0, -poisson_ratio, -poisson_ratio, 0.0, 0.0, 0.0])


def uniaxial_stress_step(model, axial_strain, eigenstrain, temperature, dt, state, guess):
    """One step under uniaxial xx stress: Newton on the lateral strains until
    sigma_yy = sigma_zz = 0 (shear strains zero). Returns (stress, new state, strain)."""
    strain = guess.copy()
    strain[:, 0] = axial_strain
    for _ in range(25):
        stress, tangent, new_state = model.update(strain, eigenstrain, temperature, dt, state)
        lateral = stress[:, 1:3]
        # 1e-6 Pa: the round-off of a stress that should be zero
        if np.all(np.abs(lateral) <= 1e-13 * np.abs(stress).max() + 1e-6):
            return stress, new_state, strain
        strain[:, 1:3] -= np.linalg.solve(tangent[:, 1:3, 1:3], lateral[..., None])[..., 0]
    raise AssertionError("the uniaxial-stress iteration did not converge")


def finite_difference_tangent(model, strain, eigenstrain, temperature, dt, state, step):
    """Central differences of the stress: [n, i, k] = d stress_i / d strain_k."""
    columns = []
    for k in range(6):
        delta = np.zeros(6)
        delta[k] = step
        plus = model.update(strain + delta, eigenstrain, temperature, dt, state)[0]
        minus = model.update(strain - delta, eigenstrain, temperature, dt, state)[0]
        columns.append((plus - minus) / (2.0 * step))
    return np.stack(columns, axis=-1)


# --- Mandel notation, tables, thermal strain ------------------------------------------------


def test_mandel_round_trip_and_double_contraction():
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.normal(size=(2, 5, 3, 3))
    a, b = a + np.swapaxes(a, 1, 2), b + np.swapaxes(b, 1, 2)
    np.testing.assert_allclose(from_mandel(to_mandel(a)), a, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(np.einsum("ni,ni->n", to_mandel(a), to_mandel(b)),
                               np.einsum("nij,nij->n", a, b), rtol=1e-13)
    # The Mandel stiffness is Hooke's law: sigma = lambda tr(eps) I + 2 G eps.
    youngs, poisson = 120e9, 0.34
    lame = youngs * poisson / ((1 + poisson) * (1 - 2 * poisson))
    shear = youngs / (2 * (1 + poisson))
    hooke = lame * np.trace(a, axis1=1, axis2=2)[:, None, None] * np.eye(3) + 2 * shear * a
    np.testing.assert_allclose(to_mandel(a) @ isotropic_stiffness(youngs, poisson),
                               to_mandel(hooke), rtol=1e-13)


def test_temperature_table_interpolates_integrates_and_is_constant_beyond_its_ends():
    table = TemperatureTable([300.0, 400.0, 700.0], [1.0, 3.0, 2.0])
    assert table([250.0, 300.0, 350.0, 550.0, 900.0]) == pytest.approx([1, 1, 2, 2.5, 2])
    # the integrand is piecewise linear: the trapezoid rule on a grid through the points is exact
    grid = np.union1d(np.linspace(200.0, 800.0, 61), table.temperatures)
    exact = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (table(grid[1:]) + table(grid[:-1]))
                                             / 2)])
    assert table.integral(200.0, grid) == pytest.approx(exact, rel=1e-13, abs=1e-12)
    constant = TemperatureTable([500.0], [4.0])
    assert constant.integral(300.0, 310.0) == pytest.approx(40.0, rel=1e-14)


def test_secant_and_instantaneous_expansion_agree_once_converted():
    reference = ZERO_CELSIUS + 20.0
    instantaneous = TemperatureTable([293.15, 573.15, 873.15], [16.5e-6, 18.3e-6, 20.0e-6])
    temperatures = np.array([200.0, reference, 400.0, 573.15, 700.0, 873.15, 1000.0])
    secant = secant_from_instantaneous(instantaneous, reference, temperatures)
    from_instantaneous = thermal_strain(instantaneous, temperatures, reference, "instantaneous")
    # at the secant table's own points the two agree to round-off ...
    assert thermal_strain(secant, temperatures, reference, "secant") == pytest.approx(
        from_instantaneous, rel=1e-12, abs=1e-18)
    # ... and between them up to the linear interpolation of alpha_sec
    between = np.linspace(300.0, 950.0, 27)
    np.testing.assert_allclose(thermal_strain(secant, between, reference, "secant"),
                               thermal_strain(instantaneous, between, reference, "instantaneous"),
                               rtol=2e-3)
    # a constant coefficient is the same either way
    for kind in ("secant", "instantaneous"):
        assert thermal_strain(17e-6, 673.15, ROOM, kind) == pytest.approx(17e-6 * 375, rel=1e-13)


def test_linear_thermoelastic_uniaxial_stress_with_a_temperature_table():
    youngs = TemperatureTable([ROOM, ZERO_CELSIUS + 200.0], [2.5e9, 2.0e9])
    model = LinearThermoElastic(youngs, 0.34)
    temperature = ZERO_CELSIUS + 100.0
    expansion = thermal_strain(40e-6, temperature, ROOM, "instantaneous")
    strain = poisson_strain(1e-3, 0.34) + expansion * IDENTITY
    stress, _, state = model.update(strain, expansion * IDENTITY, temperature, 1.0,
                                    model.initial_state(1))
    expected_modulus = 2.5e9 - 0.5e9 * 75.0 / 175.0
    assert stress[0] == pytest.approx([expected_modulus * 1e-3, 0, 0, 0, 0, 0], abs=1e-6)
    assert state == {}


# --- Viscoelasticity ------------------------------------------------------------------------


def relax_at_constant_strain(model, axial_strain, times, temperature):
    """Strain applied at t = 0 (dt = 0), then held: axial stress at `times`."""
    strain = poisson_strain(axial_strain, PI_POISSON)
    state = model.initial_state(1, temperature)
    stress, _, state = model.update(strain, 0.0, temperature, 0.0, state)
    stresses = [stress[0]]
    for dt in np.diff(times):
        stress, _, state = model.update(strain, 0.0, temperature, dt, state)
        stresses.append(stress[0])
    return np.array(stresses)


@pytest.mark.parametrize("weight", [1.0, 0.7])  # g_inf = 0 (fluid) and 0.3 (solid)
@pytest.mark.parametrize("steps", [4, 40])
def test_maxwell_relaxation_at_constant_strain(weight, steps):
    tau, strain = 100.0, 1e-3
    model = GeneralizedMaxwell(GLASSY_MODULUS, PI_POISSON, [(weight, tau)])
    times = np.linspace(0.0, 5 * tau, steps + 1)
    stresses = relax_at_constant_strain(model, strain, times, ROOM)
    expected = GLASSY_MODULUS * strain * (1 - weight + weight * np.exp(-times / tau))
    # the recursion is exact for a constant strain at any dt: rtol 1e-3, and to round-off
    np.testing.assert_allclose(stresses[:, 0], expected, rtol=1e-3)
    np.testing.assert_allclose(stresses[:, 0], expected, rtol=1e-12)
    assert np.abs(stresses[:, 1:]).max() < 1e-12 * GLASSY_MODULUS * strain  # uniaxial stress


@pytest.mark.parametrize("weight", [1.0, 0.7])
@pytest.mark.parametrize("steps", [4, 40])
def test_maxwell_at_constant_strain_rate(weight, steps):
    tau, rate = 100.0, 1e-5
    model = GeneralizedMaxwell(GLASSY_MODULUS, PI_POISSON, [(weight, tau)])
    times = np.linspace(0.0, 5 * tau, steps + 1)
    state = model.initial_state(1, ROOM)
    stresses = [0.0]
    for previous, time in zip(times[:-1], times[1:], strict=True):
        stress, _, state = model.update(poisson_strain(rate * time, PI_POISSON), 0.0, ROOM,
                                        time - previous, state)
        stresses.append(stress[0, 0])
    expected = GLASSY_MODULUS * rate * ((1 - weight) * times
                                        + weight * tau * (1 - np.exp(-times / tau)))
    # exact too: the recursion interpolates the strain linearly within a step
    np.testing.assert_allclose(stresses, expected, rtol=1e-3)
    np.testing.assert_allclose(stresses, expected, rtol=1e-11)


PRONY = [(0.5, 10.0), (0.3, 100.0)]  # g_inf = 0.2


def sinusoidal_strain_error(steps: int) -> float:
    """max |sigma - exact| / (E0 eps0) under eps = eps0 sin(w t), 2 periods, `steps` steps."""
    amplitude, frequency, end = 1e-3, 2 * np.pi / 100.0, 200.0
    model = GeneralizedMaxwell(GLASSY_MODULUS, PI_POISSON, PRONY)
    times = np.linspace(0.0, end, steps + 1)
    state = model.initial_state(1, ROOM)
    computed = [0.0]
    for previous, time in zip(times[:-1], times[1:], strict=True):
        strain = poisson_strain(amplitude * np.sin(frequency * time), PI_POISSON)
        stress, _, state = model.update(strain, 0.0, ROOM, time - previous, state)
        computed.append(stress[0, 0])
    # hereditary integral of E(t) = E0 (g_inf + sum g_i exp(-t/tau_i)) against d(eps)/dt
    exact = (1 - sum(g for g, _ in PRONY)) * np.sin(frequency * times)
    for weight, tau in PRONY:
        wt = frequency * tau
        exact += weight * wt / (1 + wt**2) * (np.cos(frequency * times)
                                              + wt * np.sin(frequency * times)
                                              - np.exp(-times / tau))
    return np.abs(np.array(computed) / (GLASSY_MODULUS * amplitude) - exact).max()


def test_maxwell_time_step_convergence_is_second_order():
    steps = np.array([25, 50, 100, 200])
    errors = np.array([sinusoidal_strain_error(n) for n in steps])
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order == pytest.approx(2.0, abs=0.1)
    assert errors[-1] < 1e-3  # dt = 1 s = tau_min / 10


@pytest.mark.parametrize("temperature", [550.0, 650.0])
def test_arrhenius_shift_is_the_reference_curve_in_reduced_time(temperature):
    reference, energy, tau, weight, strain = 600.0, 200e3, 100.0, 0.8, 1e-3
    model = GeneralizedMaxwell(GLASSY_MODULUS, PI_POISSON, [(weight, tau)],
                               ArrheniusShift(energy, reference))
    shift = np.exp(energy / GAS_CONSTANT * (1 / temperature - 1 / reference))
    times = np.linspace(0.0, 3 * tau * shift, 13)
    stresses = relax_at_constant_strain(model, strain, times, temperature)[:, 0]
    reference_curve = GLASSY_MODULUS * strain * (1 - weight + weight * np.exp(-(times / shift)
                                                                               / tau))
    np.testing.assert_allclose(stresses, reference_curve, rtol=1e-6)


def arrhenius_ramp_integral(activation_energy, start, end, heating_rate):
    """The exact integral of exp(-Q/(R T)) dt along T = start + heating_rate t up to `end`:
    the integral of exp(-a/T) dT is T exp(-a/T) - a E1(a/T)."""
    a = activation_energy / GAS_CONSTANT
    antiderivative = [t * np.exp(-a / t) - a * exp1(a / t) for t in (start, end)]
    return (antiderivative[1] - antiderivative[0]) / heating_rate


SHIFT_ENERGY, SHIFT_REFERENCE, RAMP_TAU, RAMP_WEIGHT, RAMP_STRAIN = 200e3, 600.0, 1000.0, 0.8, 1e-3


def relaxation_along(times, temperatures, temperature_substep=np.inf):
    """Axial stress at the end of `times`: strain applied at t = 0, then held, Arrhenius
    shift; by default each step integrates the reduced time in one piece."""
    model = GeneralizedMaxwell(GLASSY_MODULUS, PI_POISSON, [(RAMP_WEIGHT, RAMP_TAU)],
                               ArrheniusShift(SHIFT_ENERGY, SHIFT_REFERENCE),
                               temperature_substep)
    strain = poisson_strain(RAMP_STRAIN, PI_POISSON)
    state = model.initial_state(1, temperatures[0])
    _, _, state = model.update(strain, 0.0, temperatures[0], 0.0, state)
    for k in range(1, len(times)):
        stress, _, state = model.update(strain, 0.0, temperatures[k], times[k] - times[k - 1],
                                        state)
    return stress[0, 0]


def relaxed(reduced_time):
    return GLASSY_MODULUS * RAMP_STRAIN * (1 - RAMP_WEIGHT
                                           + RAMP_WEIGHT * np.exp(-reduced_time / RAMP_TAU))


def test_reduced_time_is_exact_when_ln_shift_is_linear_in_time():
    # 1/T falls linearly in time, 600 -> 650 K in 5 steps: ln a_T = -decay t (a_T = 1 at 600 K)
    end = 1000.0
    inverse_rate = (1 / 600.0 - 1 / 650.0) / end
    times = np.linspace(0.0, end, 6)
    temperatures = 1 / (1 / 600.0 - inverse_rate * times)
    decay = SHIFT_ENERGY / GAS_CONSTANT * inverse_rate
    exact = relaxed(np.expm1(decay * end) / decay)
    assert relaxation_along(times, temperatures) == pytest.approx(exact, rel=1e-10)


def ramp_relaxation_error(steps: int, temperature_substep=np.inf) -> float:
    """Relaxation at constant strain along a linear ramp 600 -> 650 K in 1000 s."""
    start, end, duration = 600.0, 650.0, 1000.0
    times = np.linspace(0.0, duration, steps + 1)
    temperatures = np.linspace(start, end, steps + 1)
    shift_prefactor = np.exp(SHIFT_ENERGY / (GAS_CONSTANT * SHIFT_REFERENCE))  # 1/a_T = this
    reduced_time = shift_prefactor * arrhenius_ramp_integral(SHIFT_ENERGY, start, end,  # exp(-Q/RT)
                                                             (end - start) / duration)
    return abs(relaxation_along(times, temperatures, temperature_substep)
               / relaxed(reduced_time) - 1)


def test_reduced_time_along_a_ramp_converges_at_second_order():
    steps = np.array([5, 10, 20, 40])  # 10, 5, 2.5, 1.25 K per step
    errors = np.array([ramp_relaxation_error(n) for n in steps])
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order == pytest.approx(2.0, abs=0.1)
    assert errors[0] < 1e-3
    # one 50 K step, cut into the default 1 K sub-intervals
    assert ramp_relaxation_error(1, 1.0) < 1e-6


def test_wlf_above_the_glass_transition_arrhenius_below():
    c1, c2, glass = 17.44, 51.6, ZERO_CELSIUS + 360.0
    shift = WLFShift(c1, c2, glass)
    above = glass + np.array([0.0, 10.0, 50.0, 100.0])
    wlf = -c1 * (above - glass) / (c2 + above - glass) * np.log(10)
    assert shift.log_shift(above) == pytest.approx(wlf, rel=1e-13, abs=1e-13)
    # below T_g: Arrhenius, value and slope continuous at T_g, finite below T_ref - C2
    slope = np.log(10) * c1 / c2
    assert shift.glassy_activation_energy == pytest.approx(GAS_CONSTANT * glass**2 * slope)
    below = glass - np.array([10.0, 100.0])
    arrhenius = shift.glassy_activation_energy / GAS_CONSTANT * (1 / below - 1 / glass)
    assert shift.log_shift(below) == pytest.approx(arrhenius, rel=1e-13)
    step = 1e-3
    left = (shift.log_shift(glass) - shift.log_shift(glass - step)) / step
    right = (shift.log_shift(glass + step) - shift.log_shift(glass)) / step
    assert left == pytest.approx(right, rel=1e-4)
    with pytest.raises(ValueError, match="singular"):
        WLFShift(c1, c2, glass, glass_transition=glass - 60.0)


def test_maxwell_without_time_is_the_instantaneous_elastic_response():
    model = GeneralizedMaxwell.from_moduli(0.5e9, PI_POISSON, [(1.2e9, 10.0), (0.8e9, 100.0)],
                                           ArrheniusShift(200e3, 600.0))
    strain = np.random.default_rng(RNG_SEED).normal(scale=1e-3, size=(3, 6))
    stress, tangent, _ = model.update(strain, 0.0, 620.0, 0.0, model.initial_state(3))
    instantaneous = isotropic_stiffness(GLASSY_MODULUS, PI_POISSON)
    np.testing.assert_allclose(tangent, np.broadcast_to(instantaneous, (3, 6, 6)), rtol=1e-14)
    np.testing.assert_allclose(stress, strain @ instantaneous, rtol=1e-13)


# --- Plasticity -----------------------------------------------------------------------------


@pytest.mark.parametrize("isotropic, kinematic", [(2e9, 0.0), (0.0, 2e9), (1e9, 1e9)])
@pytest.mark.parametrize("temperature", [ROOM, ZERO_CELSIUS + 200.0])
def test_j2_uniaxial_linear_hardening(isotropic, kinematic, temperature):
    yield_table = TemperatureTable([ROOM, ZERO_CELSIUS + 400.0], [60e6, 30e6])
    model = J2Plasticity(CU_MODULUS, CU_POISSON, yield_table, isotropic, kinematic)
    initial_yield = 60e6 - 30e6 * (temperature - ROOM) / 375.0
    axial = np.linspace(0.0, 1e-2, 21)[1:]
    state = model.initial_state(1, temperature)
    strain = np.zeros((1, 6))
    for value in axial:
        stress, state, strain = uniaxial_stress_step(model, value, 0.0, temperature, 1.0, state,
                                                     strain)
        hardening = isotropic + kinematic
        expected = (initial_yield + CU_MODULUS * hardening / (CU_MODULUS + hardening)
                    * (value - initial_yield / CU_MODULUS))
        assert stress[0, 0] == pytest.approx(min(CU_MODULUS * value, expected), rel=1e-8)


def constrained_bar_stress(change, peak, heating, youngs, expansion, yield_stress, isotropic,
                           kinematic):
    """Closed-form stress of a bar held at zero total axial strain, free laterally, heated
    by `peak` then cooled back (mechanical strain -alpha dT), bilinear 1D plasticity."""
    hardening = isotropic + kinematic
    plastic_fraction = hardening / (youngs + hardening)  # d(stress)/d(elastic trial stress)

    def monotone(trial, yield_point):
        return trial if trial <= yield_point else yield_point + plastic_fraction * (trial
                                                                                    - yield_point)

    if heating:
        return -monotone(youngs * expansion * change, yield_stress)
    plastic_strain = max(youngs * expansion * peak - yield_stress, 0.0) / (youngs + hardening)
    peak_stress = -(yield_stress + hardening * plastic_strain)
    # reverse yield: the yield surface, centred on the back stress -K p, of radius sy + H p
    reverse_yield = -kinematic * plastic_strain + yield_stress + isotropic * plastic_strain
    trial = peak_stress + youngs * expansion * (peak - change)
    return reverse_yield + monotone(trial - reverse_yield, 0.0)


@pytest.mark.parametrize("isotropic, kinematic", [(2e9, 0.0), (0.0, 2e9)])
def test_j2_constrained_bar_thermal_cycle(isotropic, kinematic):
    yield_stress, peak = 60e6, 375.0
    model = J2Plasticity(CU_MODULUS, CU_POISSON, yield_stress, isotropic, kinematic)
    changes = np.concatenate([np.linspace(0.0, peak, 31)[1:], np.linspace(peak, 0.0, 31)[1:]])
    state = model.initial_state(1, ROOM)
    strain = np.zeros((1, 6))
    for index, change in enumerate(changes):
        eigenstrain = CU_CTE * change * IDENTITY
        stress, state, strain = uniaxial_stress_step(model, 0.0, eigenstrain, ROOM + change, 60.0,
                                                     state, strain)
        expected = constrained_bar_stress(change, peak, index < 30, CU_MODULUS, CU_CTE,
                                          yield_stress, isotropic, kinematic)
        assert stress[0, 0] == pytest.approx(expected, rel=1e-8)
    # the residual stress: isotropic 81.8 MPa; kinematic (Bauschinger: reverse yield at
    # 48 MPa instead of 72 MPa) 59.0 MPa
    assert stress[0, 0] == pytest.approx({0.0: 81.8e6, 2e9: 59.0e6}[kinematic], rel=1e-3)


def test_j2_consistent_tangent_matches_finite_differences():
    yield_table = TemperatureTable([ROOM, ZERO_CELSIUS + 400.0], [300e6, 200e6])
    youngs = TemperatureTable([ROOM, ZERO_CELSIUS + 400.0], [120e9, 100e9])
    model = J2Plasticity(youngs, CU_POISSON, yield_table, 1e9, 3e9)
    rng = np.random.default_rng(RNG_SEED)
    state = model.initial_state(6, ROOM)
    _, _, state = model.update(rng.normal(scale=1e-2, size=(6, 6)), 0.0, ROOM, 1.0, state)
    strain = state["plastic_strain"] + rng.normal(scale=1e-2, size=(6, 6))
    eigenstrain, temperature = 2e-3 * IDENTITY, ZERO_CELSIUS + 150.0
    _, tangent, new_state = model.update(strain, eigenstrain, temperature, 1.0, state)
    assert np.all(new_state["equivalent_plastic_strain"] > state["equivalent_plastic_strain"])
    numerical = finite_difference_tangent(model, strain, eigenstrain, temperature, 1.0, state,
                                          1e-8)
    np.testing.assert_allclose(tangent, numerical, rtol=1e-6, atol=1e-6 * np.abs(tangent).max())
    np.testing.assert_allclose(tangent, np.swapaxes(tangent, 1, 2), rtol=1e-12, atol=1e-3)


# --- Annealing ------------------------------------------------------------------------------


def jmak_prefactor(kinetics):
    """k0 of k = k0 exp(-Q/(R T)), from the half time: X(t_half at T_half) = 1/2."""
    return (np.log(2) ** (1 / kinetics.exponent) / kinetics.half_time
            * np.exp(kinetics.activation_energy / (GAS_CONSTANT * kinetics.half_time_temperature)))


def test_recrystallization_is_jmak_when_isothermal():
    copper = electrodeposited_copper()
    kinetics = copper.recrystallization
    for temperature in (ZERO_CELSIUS + 180.0, ZERO_CELSIUS + 250.0):
        rate = jmak_prefactor(kinetics) * np.exp(-kinetics.activation_energy
                                                 / (GAS_CONSTANT * temperature))
        state = copper.initial_state(2, temperature)
        time = 0.0
        for dt in (1.0, 10.0, 100.0, 1000.0, 5000.0):
            _, _, state = copper.update(np.zeros((2, 6)), 0.0, temperature, dt, state)
            time += dt
            expected = 1 - np.exp(-(rate * time) ** kinetics.exponent)
            assert copper.recrystallized_fraction(state) == pytest.approx([expected] * 2,
                                                                          rel=1e-12)


@pytest.mark.parametrize("celsius, duration, check", [
    (400.0, 600.0, lambda fraction: fraction > 0.95),
    (25.0, 36000.0, lambda fraction: fraction < 0.01),
])
def test_copper_anneals_at_400_C_and_not_at_room_temperature(celsius, duration, check):
    copper = electrodeposited_copper()
    temperature = ZERO_CELSIUS + celsius
    state = copper.initial_state(1, temperature)
    _, _, state = copper.update(np.zeros((1, 6)), 0.0, temperature, duration, state)
    assert check(copper.recrystallized_fraction(state)[0])


def ramp_progress_error(steps: int, temperature_substep=np.inf) -> float:
    """JMAK progress S after a 5 K/min ramp 25 -> 300 C, vs the exact Arrhenius integral."""
    kinetics = dataclasses.replace(electrodeposited_copper().recrystallization,
                                   temperature_substep=temperature_substep)
    start, end, heating_rate = ROOM, ZERO_CELSIUS + 300.0, 5.0 / 60.0
    temperatures = np.linspace(start, end, steps + 1)
    dt = (end - start) / heating_rate / steps
    model = J2Plasticity(CU_MODULUS, CU_POISSON, 350e6, recrystallization=kinetics)
    state = model.initial_state(1, start)
    for temperature in temperatures[1:]:
        _, _, state = model.update(np.zeros((1, 6)), 0.0, temperature, dt, state)
    exact = jmak_prefactor(kinetics) * arrhenius_ramp_integral(kinetics.activation_energy, start,
                                                               end, heating_rate)
    return abs(state["recrystallization_progress"][0] / exact - 1)


def test_recrystallization_along_a_ramp_converges_at_second_order():
    steps = np.array([11, 22, 44, 88])  # 25, 12.5, 6.25, 3.125 K per step
    errors = np.array([ramp_progress_error(n) for n in steps])
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert order == pytest.approx(2.0, abs=0.1)
    assert errors[0] < 0.01  # 25 K steps
    # one 275 K step, cut into the default 1 K sub-intervals
    assert ramp_progress_error(1, 1.0) < 1e-4


def test_annealing_resets_the_hardening():
    copper = electrodeposited_copper()
    state = copper.initial_state(1, ROOM)
    strain = np.zeros((1, 6))
    # cold work at room temperature: 2 % axial strain, then unload to zero stress
    _, state, strain = uniaxial_stress_step(copper, 2e-2, 0.0, ROOM, 1.0, state, strain)
    unloaded_axial = state["plastic_strain"][0, 0]
    _, state, strain = uniaxial_stress_step(copper, unloaded_axial, 0.0, ROOM, 1.0, state,
                                            strain)
    assert state["hardening_strain"][0] > 1e-2
    # stress-free: heat to 400 C in an hour, hold 10 min, cool in an hour
    hold = ZERO_CELSIUS + 400.0
    for temperature, dt in ((hold, 3600.0), (hold, 600.0), (ROOM, 3600.0)):
        expansion = thermal_strain(CU_CTE, temperature, ROOM, "instantaneous") * IDENTITY
        _, state, strain = uniaxial_stress_step(copper, unloaded_axial + expansion[0], expansion,
                                                temperature, dt, state, strain)
    assert state["hardening_strain"][0] < 1e-12
    # reloading yields at the annealed yield stress and hardens afresh
    annealed_yield, hardening = 60e6, copper.hardening_modulus
    for extra in (2e-4, 1e-3, 5e-3):
        stress, _, _ = uniaxial_stress_step(copper, unloaded_axial + extra, 0.0, ROOM, 1.0, state,
                                            strain)
        expected = min(CU_MODULUS * extra, annealed_yield + CU_MODULUS * hardening
                       / (CU_MODULUS + hardening) * (extra - annealed_yield / CU_MODULUS))
        assert stress[0, 0] == pytest.approx(expected, rel=1e-8)


# --- Every model ----------------------------------------------------------------------------


def viscoelastic_polyimide():
    return GeneralizedMaxwell(TemperatureTable([ROOM, ZERO_CELSIUS + 200.0], [2.5e9, 2.0e9]),
                              PI_POISSON, [(0.4, 30.0), (0.3, 600.0)],
                              WLFShift(17.44, 51.6, ZERO_CELSIUS + 360.0))


MODELS = {
    "linear": lambda: LinearThermoElastic(TemperatureTable([ROOM, 673.15], [120e9, 100e9]),
                                          TemperatureTable([ROOM, 673.15], [0.34, 0.36])),
    "maxwell": viscoelastic_polyimide,
    "j2": electrodeposited_copper,
}


@pytest.mark.parametrize("name", MODELS)
def test_tangent_matches_finite_differences_at_a_random_state(name):
    model = MODELS[name]()
    rng = np.random.default_rng(RNG_SEED)
    points = 8
    # half the points stay elastic (strain 1e-5), half flow (1e-2); none near the yield surface
    scale = np.repeat([1e-5, 1e-2], points // 2)[:, None]
    state = model.initial_state(points, ROOM)
    temperatures = ZERO_CELSIUS + rng.uniform(150.0, 400.0, size=(2, points))
    strain = np.zeros((points, 6))
    for temperature in temperatures:
        strain = strain + scale * rng.normal(size=(points, 6))
        eigenstrain = thermal_strain(CU_CTE, temperature, ROOM, "instantaneous")[:, None] * IDENTITY
        stress, tangent, new_state = model.update(strain, eigenstrain, temperature, 30.0, state)
        before = copy.deepcopy(state)
        numerical = finite_difference_tangent(model, strain, eigenstrain, temperature, 30.0,
                                              state, 1e-8)
        np.testing.assert_allclose(tangent, numerical, rtol=1e-6,
                                   atol=1e-6 * np.abs(tangent).max())
        # the start-of-step state is left as it was
        for key, value in before.items():
            np.testing.assert_array_equal(state[key], value)
        state = new_state


def test_secant_from_instantaneous_is_the_closed_form_for_a_linear_alpha():
    """alpha(T) = a + b (T - T_ref) integrates to a (T - T_ref) + b/2 (T - T_ref)^2, so the
    secant coefficient is a + b/2 (T - T_ref): linear again, and a two-point secant table
    holds it exactly. Both kinds then give the same strain from any stress-free T0."""
    a, b, reference = 16e-6, 1.2e-8, ZERO_CELSIUS + 20.0
    ends = np.array([ZERO_CELSIUS, ZERO_CELSIUS + 500.0])
    instantaneous = TemperatureTable(ends, a + b * (ends - reference))
    temperatures = np.linspace(ends[0], ends[1], 11)
    secant = secant_from_instantaneous(instantaneous, reference, temperatures)
    np.testing.assert_allclose(secant.values, a + b / 2 * (temperatures - reference),
                               rtol=1e-12)
    start, hot = ZERO_CELSIUS + 25.0, ZERO_CELSIUS + 400.0
    exact = a * (hot - start) + b / 2 * ((hot - reference) ** 2 - (start - reference) ** 2)
    two_point = TemperatureTable(ends, a + b / 2 * (ends - reference))
    from_secant = (thermal_strain(two_point, hot, reference, "secant")
                   - thermal_strain(two_point, start, reference, "secant"))
    from_instantaneous = thermal_strain(instantaneous, hot, start, "instantaneous")
    assert from_secant == pytest.approx(exact, rel=1e-12)
    assert from_instantaneous == pytest.approx(exact, rel=1e-12)
    # the naive alpha_sec(T) (T - T0) is wrong by alpha_sec(T) - alpha_sec(T0) times T0 - T_ref
    naive = two_point(hot) * (hot - start)
    assert abs(naive - exact) / exact > 1e-3


TABULATED_POLYIMIDE = """
[materials.polyimide]
youngs_modulus = { temperatures = ["23 degC", "200 degC", "400 degC"], values = [
  "2.5 GPa", "2.0 GPa", "1.2 GPa"] }
poisson_ratio = { temperatures = ["23 degC", "400 degC"], values = [0.34, 0.4] }
thermal_expansion = { temperatures = ["20 degC", "400 degC"], values = ["40e-6 1/K", "60e-6 1/K"] }
thermal_expansion_kind = "secant"
thermal_expansion_reference = "20 degC"
"""

TABLES = """
[case]
name = "tables"
[geometry]
kind = "layers"
length = "40 um"
layers = [ { material = "copper", thickness = "8 um" },
           { material = "polyimide", thickness = "8 um" } ]
mesh_size = "4 um"
[schedule]
start = "25 degC"
steps = [ { to = "400 degC", rate = "5 K/min" } ]
""" + TABULATED_POLYIMIDE


def test_property_tables_in_a_case_file():
    case = load_case_text(TABLES, file="tables.toml")
    polyimide = case.materials["polyimide"]
    assert polyimide.youngs_modulus(ZERO_CELSIUS + 300.0) == pytest.approx(1.6e9, rel=1e-12)
    assert polyimide.poisson_ratio(ZERO_CELSIUS + 23.0) == pytest.approx(0.34)
    reference, hot = ZERO_CELSIUS + 20.0, ZERO_CELSIUS + 400.0
    secant_at_start = 40e-6 + 20e-6 * 5.0 / 380.0
    assert polyimide.thermal_strain(hot, ROOM) == pytest.approx(
        60e-6 * (hot - reference) - secant_at_start * (ROOM - reference), rel=1e-12)
    assert case.materials["copper"].youngs_modulus == pytest.approx(120e9)  # scalars stay


@pytest.mark.parametrize("change, key, message", [
    (('"2.0 GPa", ', ""), "youngs_modulus", "got 3 temperatures and 2 values"),
    (('"200 degC", "400 degC"]', '"400 degC", "200 degC"]'), "youngs_modulus",
     "the temperatures must increase, got '200 degC' after '400 degC'"),
    (('"1.2 GPa"', '"1.2 m"'), "youngs_modulus", "values[2]: expected a positive pressure"),
    (("0.4]", "0.6]"), "poisson_ratio", "values[1]: expected a Poisson ratio between"),
    (('"23 degC", "400 degC"], values = [0.34', '"23 kg", "400 degC"], values = [0.34'),
     "poisson_ratio", "temperatures[0]: expected a temperature"),
    (('thermal_expansion_kind = "secant"\n', ""), "thermal_expansion_kind",
     "required with a thermal_expansion table"),
    (('thermal_expansion_reference = "20 degC"\n', ""), "thermal_expansion_reference",
     "required with a secant thermal_expansion table"),
])
def test_a_bad_property_table_is_one_line_naming_the_key(change, key, message):
    with pytest.raises(CaseError) as raised:
        load_case_text(TABLES.replace(*change), file="tables.toml")
    text = str(raised.value)
    assert "\n" not in text
    assert f"tables.toml: materials.polyimide.{key}: " in text and message in text, text


def test_the_library_takes_tables_and_names_a_bad_one(tmp_path, monkeypatch):
    from solver.materials import library

    entry = TABULATED_POLYIMIDE.replace("[materials.polyimide]", "[hot_polyimide]")
    library_file = tmp_path / "materials.toml"
    library_file.write_text(entry + 'source = "test"\n')
    monkeypatch.setattr(library, "LIBRARY_FILE", library_file)
    library._load_library.cache_clear()
    try:
        polyimide = library.library()["hot_polyimide"]
        assert polyimide.youngs_modulus(ZERO_CELSIUS + 111.5) == pytest.approx(2.25e9)
        library_file.write_text(entry.replace('thermal_expansion_kind = "secant"\n', "")
                                + 'source = "test"\n')
        library._load_library.cache_clear()
        with pytest.raises(CaseError) as raised:
            library.library()
        assert "materials.toml: hot_polyimide" in str(raised.value)
        assert "thermal_expansion_kind" in str(raised.value)
    finally:
        library._load_library.cache_clear()
