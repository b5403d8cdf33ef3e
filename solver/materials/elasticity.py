"""Isotropic linear elasticity, written once: the moduli from E and nu, Hooke's law, and
the plane-strain embedding of 2D tensors in 3D.

The moduli are plain arithmetic, so they take floats, numpy arrays (per material point or
per layer) and UFL expressions (cell-wise fields, a modulus that softens with the SOC)
alike. Hooke's law and the embedding are UFL.
"""

import ufl

# --- moduli ----------------------------------------------------------------------------------


def shear_modulus(youngs_modulus, poisson_ratio):
    """G = mu = E / (2 (1 + nu))."""
    return youngs_modulus / (2 * (1 + poisson_ratio))


def bulk_modulus(youngs_modulus, poisson_ratio):
    """K = E / (3 (1 - 2 nu))."""
    return youngs_modulus / (3 * (1 - 2 * poisson_ratio))


def lame(youngs_modulus, poisson_ratio):
    """The Lame constants (lambda, mu): lambda = E nu / ((1 + nu) (1 - 2 nu)), mu = G."""
    lmbda = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))
    return lmbda, shear_modulus(youngs_modulus, poisson_ratio)


def plane_strain_modulus(youngs_modulus, poisson_ratio):
    """E / (1 - nu^2): the axial stiffness of a strip in plane strain (sigma_yy = 0)."""
    return youngs_modulus / (1 - poisson_ratio**2)


# --- Hooke's law (UFL) -----------------------------------------------------------------------


def hooke(strain, lmbda, mu, volume_change=None):
    """sigma = lambda tr(eps) I + 2 mu eps, of the strain's dimension.

    volume_change: the trace of the full 3D strain where `strain` is only part of it (the
    in-plane strain of plane strain, whose out-of-plane strain and isotropic eigenstrain add
    to the trace); None: tr(strain)."""
    trace = ufl.tr(strain) if volume_change is None else volume_change
    return lmbda * trace * ufl.Identity(ufl.shape(strain)[0]) + 2 * mu * strain


# --- plane strain ----------------------------------------------------------------------------


def as_3d(tensor, zz=0):
    """A 2x2 tensor as 3x3: zz at (2, 2), zero elsewhere in the third row and column (the
    out-of-plane strain or stress of plane strain); a 3x3 tensor as it is."""
    if ufl.shape(tensor) == (3, 3):
        return tensor
    return ufl.as_matrix([[tensor[0, 0], tensor[0, 1], 0], [tensor[1, 0], tensor[1, 1], 0],
                          [0, 0, zz]])


def in_plane(tensor, gdim=2):
    """The leading gdim x gdim block of a tensor (a 3x3 in 2D: its in-plane part)."""
    if ufl.shape(tensor) == (gdim, gdim):
        return tensor
    return ufl.as_matrix([[tensor[i, j] for j in range(gdim)] for i in range(gdim)])
