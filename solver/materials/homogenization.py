"""Effective thermo-elastic constants of the mix from its composition.

The mix is a binder matrix holding spherical active particles, optionally conductive powder,
and pores, every phase isotropic; volume fractions are of the whole layer, pores included.

- Elastic moduli: Mori-Tanaka with spheres in the binder. Its bulk and shear moduli are the
  Hashin-Shtrikman expressions with the binder as the reference medium, so they lie between
  the Hashin-Shtrikman bounds (Walpole's form, any number of phases: reference = the smallest
  or the largest bulk and shear moduli present) and equal the lower bound when the binder is
  the softest phase in both moduli (a stiff-particle mix without pores).
- Thermal expansion: the Mori-Tanaka average of the phases' thermal stress (Benveniste and
  Dvorak 1990), alpha* = sum c_r K_r a_r alpha_r / sum c_r K_r a_r, with a_r the bulk strain
  concentration of phase r. For two phases it is Levin's exact relation (Rosen and Hashin for
  isotropic phases) evaluated at the Mori-Tanaka bulk modulus.
- Pores have K = G = 0: they take no load and carry no thermal stress. A pore phase drops every
  lower bound to zero, which is what the Hashin-Shtrikman lower bound is for a porous solid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.materials import elasticity


@dataclass(frozen=True)
class Phase:
    volume_fraction: float
    bulk_modulus: float  # Pa
    shear_modulus: float  # Pa
    thermal_expansion: float  # 1/K

    @classmethod
    def from_youngs(cls, volume_fraction: float, youngs_modulus: float, poisson_ratio: float,
                    thermal_expansion: float) -> Phase:
        return cls(
            volume_fraction,
            elasticity.bulk_modulus(youngs_modulus, poisson_ratio),
            elasticity.shear_modulus(youngs_modulus, poisson_ratio),
            thermal_expansion,
        )

    @classmethod
    def pores(cls, volume_fraction: float) -> Phase:
        return cls(volume_fraction, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Effective:
    bulk_modulus: float
    shear_modulus: float

    @property
    def youngs_modulus(self) -> float:
        if self.bulk_modulus == 0 or self.shear_modulus == 0:
            return 0.0
        return 9 * self.bulk_modulus * self.shear_modulus / (
            3 * self.bulk_modulus + self.shear_modulus)

    @property
    def poisson_ratio(self) -> float:
        return (3 * self.bulk_modulus - 2 * self.shear_modulus) / (
            2 * (3 * self.bulk_modulus + self.shear_modulus))


def _zeta(bulk: float, shear: float) -> float:
    """The Hashin-Shtrikman shear reference term of a medium (0 for a medium of zero moduli)."""
    if shear == 0:
        return 0.0
    return shear / 6 * (9 * bulk + 8 * shear) / (bulk + 2 * shear)


def _hashin_shtrikman(phases: list[Phase], reference_bulk: float,
                      reference_shear: float) -> Effective:
    """The Hashin-Shtrikman expressions with the given reference medium.

    K = [sum c_r / (K_r + 4/3 G0)]^-1 - 4/3 G0 and G = [sum c_r / (G_r + zeta0)]^-1 - zeta0; a
    phase with a zero denominator (pores against a zero reference) makes the sum infinite and
    the modulus zero.
    """

    def bound(moduli: np.ndarray, shift: float) -> float:
        fractions = np.array([phase.volume_fraction for phase in phases])
        denominators = moduli + shift
        if np.any((denominators == 0) & (fractions > 0)):
            return 0.0
        return float(1 / np.sum(fractions / denominators) - shift)

    bulk = np.array([phase.bulk_modulus for phase in phases])
    shear = np.array([phase.shear_modulus for phase in phases])
    return Effective(bound(bulk, 4 / 3 * reference_shear),
                     bound(shear, _zeta(reference_bulk, reference_shear)))


def hashin_shtrikman_bounds(phases: list[Phase]) -> tuple[Effective, Effective]:
    """(lower, upper) Hashin-Shtrikman bounds on K and G, and so on E (monotonic in both)."""
    present = [phase for phase in phases if phase.volume_fraction > 0]
    bulk = [phase.bulk_modulus for phase in present]
    shear = [phase.shear_modulus for phase in present]
    return (_hashin_shtrikman(present, min(bulk), min(shear)),
            _hashin_shtrikman(present, max(bulk), max(shear)))


def mori_tanaka(matrix: Phase, inclusions: list[Phase]) -> tuple[Effective, float]:
    """Effective moduli and thermal expansion of spheres in `matrix` (Mori-Tanaka)."""
    phases = [matrix, *inclusions]
    fractions = np.array([phase.volume_fraction for phase in phases])
    bulk = np.array([phase.bulk_modulus for phase in phases])
    shear = np.array([phase.shear_modulus for phase in phases])
    expansion = np.array([phase.thermal_expansion for phase in phases])
    # Dilute strain concentrations of a sphere in the matrix (Eshelby), bulk and shear.
    bulk_concentration = (matrix.bulk_modulus + 4 / 3 * matrix.shear_modulus) / (
        bulk + 4 / 3 * matrix.shear_modulus)
    zeta = _zeta(matrix.bulk_modulus, matrix.shear_modulus)
    shear_concentration = (matrix.shear_modulus + zeta) / (shear + zeta)
    weighted_bulk = fractions * bulk * bulk_concentration
    effective = Effective(
        float(np.sum(weighted_bulk) / np.sum(fractions * bulk_concentration)),
        float(np.sum(fractions * shear * shear_concentration)
              / np.sum(fractions * shear_concentration)),
    )
    return effective, float(np.sum(weighted_bulk * expansion) / np.sum(weighted_bulk))


def levin_thermal_expansion(effective_bulk: float, first: Phase, second: Phase) -> float:
    """Levin's exact CTE of a two-phase isotropic composite of the given bulk modulus."""
    return first.thermal_expansion + (second.thermal_expansion - first.thermal_expansion) * (
        1 / effective_bulk - 1 / first.bulk_modulus) / (
        1 / second.bulk_modulus - 1 / first.bulk_modulus)


def mix_properties(binder, active, active_fraction: float, conductive=None,
                   conductive_fraction: float = 0.0, porosity: float = 0.0) -> dict[str, float]:
    """The mix's E, nu and CTE by Mori-Tanaka (binder matrix), with the Hashin-Shtrikman bounds.

    `binder`, `active` and `conductive` have youngs_modulus, poisson_ratio and
    thermal_expansion (solver.materials.library.Material); the binder takes the volume not given to
    the others. Keys are SI: Pa, 1/K, volume fractions.
    """
    binder_fraction = 1 - active_fraction - conductive_fraction - porosity
    if binder_fraction <= 0:
        raise ValueError(f"no volume left for the binder ({binder_fraction:.3g})")

    def phase(material, fraction):
        return Phase.from_youngs(fraction, material.youngs_modulus, material.poisson_ratio,
                                 material.thermal_expansion)

    matrix = phase(binder, binder_fraction)
    inclusions = [phase(active, active_fraction)]
    if conductive is not None and conductive_fraction > 0:
        inclusions.append(phase(conductive, conductive_fraction))
    if porosity > 0:
        inclusions.append(Phase.pores(porosity))
    effective, expansion = mori_tanaka(matrix, inclusions)
    lower, upper = hashin_shtrikman_bounds([matrix, *inclusions])
    return {
        "binder_fraction": binder_fraction,
        "youngs_modulus": effective.youngs_modulus,
        "poisson_ratio": effective.poisson_ratio,
        "thermal_expansion": expansion,
        "bulk_modulus": effective.bulk_modulus,
        "shear_modulus": effective.shear_modulus,
        "youngs_modulus_hs_lower": lower.youngs_modulus,
        "youngs_modulus_hs_upper": upper.youngs_modulus,
        "bulk_modulus_hs_lower": lower.bulk_modulus,
        "bulk_modulus_hs_upper": upper.bulk_modulus,
        "shear_modulus_hs_lower": lower.shear_modulus,
        "shear_modulus_hs_upper": upper.shear_modulus,
    }
