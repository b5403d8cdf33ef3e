"""[interface]: the foil/layer interface, its strengths and its cohesive zone."""

from typing import Annotated

from pydantic import Field

from solver.case.tables import Table
from solver.case.units import PositiveLength, PositivePressure, SIQuantity


class Interface(Table):
    # Defaults are written with units and converted like file values (validate_default).
    normal_strength: PositivePressure = Field(
        "50 MPa",
        validate_default=True,
        description="cohesive strength of the foil/layer interface in opening",
    )
    shear_strength: PositivePressure = Field(
        "50 MPa",
        validate_default=True,
        description="cohesive strength of the foil/layer interface in shear",
    )
    averaging_length: PositiveLength = Field(
        "1 um",
        validate_default=True,
        description="length over which interface tractions are averaged when reported",
    )
    # The cohesive zone (solver/physics/cohesive.py): bilinear, mixed mode (Benzeggagh-Kenane).
    mode_I_fracture_energy: Annotated[float, SIQuantity("fracture energy", positive=True)] = \
        Field("25 J/m^2", validate_default=True,
              description="cohesive zone: fracture energy in opening (polyimide/Cu intrinsic "
              "adhesion, typically 25-30 J/m^2 in the literature, no single source: a "
              "placeholder to calibrate)")
    mode_II_fracture_energy: Annotated[float, SIQuantity("fracture energy", positive=True)] = \
        Field("25 J/m^2", validate_default=True,
              description="cohesive zone: fracture energy in shear (a placeholder: no data)")
    bk_exponent: float = Field(
        2.0, gt=0, description="cohesive zone: Benzeggagh-Kenane mixed-mode exponent eta")
    penalty_stiffness: Annotated[float, SIQuantity("stiffness per area", positive=True)] = \
        Field("1e16 Pa/m", validate_default=True,
              description="cohesive zone: initial stiffness K of the bonded interface (and the "
              "contact penalty in compression)")
    viscosity: Annotated[float, SIQuantity("time")] = Field(
        "0 s", validate_default=True, ge=0,
        description="cohesive zone: viscous regularization time of the damage (0: none)")
    friction_coefficient: float = Field(
        0.0, ge=0, description="cohesive zone: Coulomb friction coefficient mu_f of the damaged "
        "interface in contact (0: frictionless; docs/pulloff.md)")
