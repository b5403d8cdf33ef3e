"""Closed-form results the solver is verified against."""

from dataclasses import dataclass

import numpy as np

from solver.materials.elasticity import plane_strain_modulus


@dataclass(frozen=True)
class MultilayerBeam:
    """A free multilayer strip under per-layer eigenstrains (Hsueh 2002, plane strain).

    The axial strain is linear through the thickness, eps(y) = strain_at_bottom - curvature*y,
    with y measured from the bottom face; force and moment balance fix both. The curvature is
    that of the deflection w of the strip, w'' (positive: concave up, the ends rise).
    """

    interfaces: np.ndarray  # y of the layer boundaries, bottom (0) to top
    moduli: np.ndarray  # effective axial moduli of the layers
    eigenstrains: np.ndarray  # effective axial eigenstrains of the layers
    strain_at_bottom: float
    curvature: float

    def stress(self, y):
        """Axial stress at heights y (each y assigned to the layer that contains it)."""
        y = np.asarray(y, dtype=float)
        layer = np.clip(np.searchsorted(self.interfaces, y, side="right") - 1, 0,
                        len(self.moduli) - 1)
        strain = self.strain_at_bottom - self.curvature * y
        return self.moduli[layer] * (strain - self.eigenstrains[layer])


def multilayer_beam(thicknesses, moduli, eigenstrains) -> MultilayerBeam:
    """Solve force and moment balance of a free multilayer strip."""
    thicknesses = np.asarray(thicknesses, dtype=float)
    moduli = np.asarray(moduli, dtype=float)
    eigenstrains = np.asarray(eigenstrains, dtype=float)
    interfaces = np.concatenate([[0.0], np.cumsum(thicknesses)])
    lo, hi = interfaces[:-1], interfaces[1:]
    first = moduli * (hi - lo)  # integral of E dy over each layer
    second = moduli * (hi**2 - lo**2) / 2  # integral of E y dy
    third = moduli * (hi**3 - lo**3) / 3  # integral of E y^2 dy
    system = np.array([[first.sum(), second.sum()], [second.sum(), third.sum()]])
    load = np.array([(first * eigenstrains).sum(), (second * eigenstrains).sum()])
    strain_at_bottom, strain_gradient = np.linalg.solve(system, load)
    return MultilayerBeam(interfaces, moduli, eigenstrains, strain_at_bottom, -strain_gradient)


def plane_strain_layers(thicknesses, youngs_moduli, poisson_ratios, expansions, delta_t):
    """The multilayer strip in plane strain: moduli E/(1-nu^2), eigenstrains (1+nu) alpha dT."""
    nu = np.asarray(poisson_ratios, dtype=float)
    return multilayer_beam(
        thicknesses,
        plane_strain_modulus(np.asarray(youngs_moduli, dtype=float), nu),
        (1 + nu) * np.asarray(expansions, dtype=float) * delta_t,
    )


def timoshenko_curvature(h1, h2, e1, e2, mismatch_strain):
    """Timoshenko (1925) bimetal curvature w'' for layer 2 (h2, e2) on top of layer 1.

    mismatch_strain is eigenstrain(2) - eigenstrain(1): a longer top layer (positive) bends
    the strip concave down, w'' < 0.
    """
    m, n, h = h1 / h2, e1 / e2, h1 + h2
    return (-6 * mismatch_strain * (1 + m) ** 2
            / (h * (3 * (1 + m) ** 2 + (1 + m * n) * (m**2 + 1 / (m * n)))))


@dataclass(frozen=True)
class GeneralizedPlaneStrainStrip:
    """A free multilayer strip in generalized plane strain: the out-of-plane strain is one
    uniform unknown with zero net out-of-plane force, the in-plane stress is that of a beam
    (sigma_yy = 0)."""

    beam: MultilayerBeam
    out_of_plane_strain: float


def generalized_plane_strain_layers(thicknesses, youngs_moduli, poisson_ratios, expansions,
                                    delta_t) -> GeneralizedPlaneStrainStrip:
    """Force and moment balance in x and force balance in z, for the strain field
    eps_xx = c - w'' y, eps_zz = e0. With sigma_yy = 0 Hooke's law gives, per layer,
    sigma_xx = E/(1-nu^2) (eps_xx + nu e0 - (1+nu) alpha dT) and
    sigma_zz = E (e0 - alpha dT) + nu sigma_xx."""
    h = np.asarray(thicknesses, dtype=float)
    E = np.asarray(youngs_moduli, dtype=float)
    nu = np.asarray(poisson_ratios, dtype=float)
    free = np.asarray(expansions, dtype=float) * delta_t
    plane = plane_strain_modulus(E, nu)
    interfaces = np.concatenate([[0.0], np.cumsum(h)])
    lo, hi = interfaces[:-1], interfaces[1:]
    m0, m1, m2 = hi - lo, (hi**2 - lo**2) / 2, (hi**3 - lo**3) / 3  # moments of y per layer
    # Unknowns (c, g, e0) with eps_xx = c + g*y; each row is one balance equation.
    system = np.array([
        [(plane * m0).sum(), (plane * m1).sum(), (plane * nu * m0).sum()],
        [(plane * m1).sum(), (plane * m2).sum(), (plane * nu * m1).sum()],
        [(nu * plane * m0).sum(), (nu * plane * m1).sum(), ((E + nu**2 * plane) * m0).sum()],
    ])
    eigen = (1 + nu) * free
    load = np.array([(plane * eigen * m0).sum(), (plane * eigen * m1).sum(),
                     ((E * free + nu * plane * eigen) * m0).sum()])
    c, g, e0 = np.linalg.solve(system, load)
    beam = MultilayerBeam(interfaces, plane, eigen - nu * e0, c, -g)
    return GeneralizedPlaneStrainStrip(beam, e0)
