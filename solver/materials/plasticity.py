"""J2 plasticity with linear isotropic hardening and an optional overstress viscosity, in UFL.

The return mapping is closed form, so the tangent UFL derives from it is the consistent one.
The cohesive problem's bulk uses it at small strain; the swelling stage (solver/physics/swelling.py)
also at finite strain, on the Kirchhoff deviator with the elastic volume ratio Je.
"""

import numpy as np
import ufl


def radial_return(trial_deviator, shear_modulus, flow_stress, hardening_modulus,
                  equivalent_plastic_strain, flowing, volume_ratio=1.0, rate_resistance=0.0):
    """Radial return of a trial stress deviator onto the radius sqrt(2/3) (sigma_f + H p) Je:
    (plastic multiplier gamma, the factor that scales the trial deviator).

    Je (`volume_ratio`) makes the flow stress one of the Cauchy stress when the deviator is
    a Kirchhoff one. rate_resistance = eta / dt adds the overstress law sigma_eq = sigma_f +
    H p + eta dp/dt. gamma = (|s_trial| - radius) / (2 mu + 2/3 (H + eta / dt) Je) where
    that is positive (beyond 1e-10 radius) and `flowing` (a 0/1 indicator) is 1, else 0;
    the plastic strain increment is gamma n, the equivalent plastic strain increment
    sqrt(2/3) gamma."""
    # + 1 Pa^2 keeps the norm's derivative finite at a zero deviator
    norm = ufl.sqrt(ufl.inner(trial_deviator, trial_deviator) + 1.0)
    radius = np.sqrt(2 / 3) * volume_ratio * (
        flow_stress + hardening_modulus * equivalent_plastic_strain)
    overstress = norm - radius
    resistance = 2 * shear_modulus + 2 / 3 * volume_ratio * (hardening_modulus
                                                             + rate_resistance)
    # a point left on the yield surface by the last step is elastic to 1e-10 of its radius:
    # whether it yields must not be decided by round-off (it would change the Newton path
    # with the number of ranks)
    multiplier = ufl.conditional(ufl.And(ufl.gt(flowing, 0.5),
                                         ufl.gt(overstress, 1e-10 * radius)),
                                 overstress / resistance, 0)
    return multiplier, 1 - 2 * shear_modulus * multiplier / norm


def plastic_strain_increment(trial_deviator, scale, shear_modulus):
    """gamma n = (1 - scale) s_trial / (2 mu): the plastic strain increment of a small-strain
    return, from the trial deviator and radial_return's scale."""
    return (1 - scale) * trial_deviator / (2 * shear_modulus)


def equivalent_plastic_strain_increment(multiplier):
    """sqrt(2/3) gamma: the equivalent plastic strain increment of the plastic multiplier."""
    return np.sqrt(2 / 3) * multiplier
