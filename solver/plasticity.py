"""Small-strain J2 plasticity with linear isotropic hardening, in UFL.

The return mapping is closed form, so the tangent UFL derives from it is the consistent one.
It is the small-strain, rate-independent case of the swelling stage's radial return
(solver/swelling.py `_return_mapping`, which also carries the finite-strain Je and the
overstress viscosity); the cohesive problem's bulk uses this one.
"""

import numpy as np
import ufl


def radial_return(trial_deviator, shear_modulus, flow_stress, hardening_modulus,
                  equivalent_plastic_strain, flowing):
    """Radial return of a trial stress deviator onto sqrt(2/3) (sigma_f + H p):
    (plastic multiplier gamma, the factor that scales the trial deviator).
    gamma = (|s_trial| - radius) / (2 mu + 2/3 H) where that is positive (beyond 1e-10 radius)
    and `flowing` (a cell-wise 0/1 indicator) is 1, else 0; the plastic strain increment is
    gamma n and the equivalent plastic strain increment sqrt(2/3) gamma."""
    # + 1 Pa^2 keeps the norm's derivative finite at a zero deviator
    norm = ufl.sqrt(ufl.inner(trial_deviator, trial_deviator) + 1.0)
    radius = np.sqrt(2 / 3) * (flow_stress + hardening_modulus * equivalent_plastic_strain)
    overstress = norm - radius
    # a point left on the yield surface by the last step is elastic to 1e-10 of its radius:
    # whether it yields must not be decided by round-off (it would change the Newton path
    # with the number of ranks)
    multiplier = ufl.conditional(ufl.And(ufl.gt(flowing, 0.5),
                                         ufl.gt(overstress, 1e-10 * radius)),
                                 overstress / (2 * shear_modulus + 2 / 3 * hardening_modulus),
                                 0)
    return multiplier, 1 - 2 * shear_modulus * multiplier / norm
