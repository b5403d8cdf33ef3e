"""Inelastic behaviour of materials in case files, and the material-point models built
from it (solver/materials/constitutive.py).

A material is elastic unless its `behaviour` says otherwise; the library holds default
parameters for copper plasticity with annealing and polyimide viscoelasticity, which a case
switches on with `behaviour = "plastic"` or `"viscoelastic"`. All defaults are placeholders
to calibrate (their descriptions say where they come from).
"""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from solver.case.tables import FrozenTable, rule_broken
from solver.case.units import SIQuantity
from solver.materials import constitutive

Behaviour = Literal["elastic", "plastic", "viscoelastic"]

Pressure = Annotated[float, SIQuantity("pressure", positive=True)]
NonNegativePressure = Annotated[float, SIQuantity("pressure")]
Temperature = Annotated[float, SIQuantity("temperature")]
Time = Annotated[float, SIQuantity("time", positive=True)]
ActivationEnergy = Annotated[float, SIQuantity("activation energy", positive=True)]


def _same_length(values: list, temperatures: list, key: str):
    if len(values) != len(temperatures):
        raise rule_broken(key, f"needs one value per entry of temperatures "
                               f"({len(temperatures)}), got {len(values)}")


class Plasticity(FrozenTable):
    """J2 (von Mises) plasticity with linear hardening and annealing (recrystallization)."""

    temperatures: list[Temperature] = Field(
        ["25 degC", "400 degC"], min_length=1,
        description="temperatures of the yield-stress tables (linear in between, constant "
                    "beyond)")
    yield_stress: list[Pressure] = Field(
        ["350 MPa", "250 MPa"],
        description="yield stress of the as-deposited (hard) metal at those temperatures "
                    "(placeholder for electrodeposited Cu, below its 390-690 MPa UTS)")
    annealed_yield_stress: list[Pressure] = Field(
        ["60 MPa", "30 MPa"],
        description="yield stress of the annealed metal (placeholder; annealed Cu 30-70 MPa)")
    hardening_modulus: NonNegativePressure = Field(
        "500 MPa", description="linear isotropic hardening modulus (placeholder)")
    kinematic_modulus: NonNegativePressure = Field(
        "0 MPa", description="linear kinematic (Prager) hardening modulus")
    recrystallization_half_time: Time = Field(
        "1 h", description="JMAK annealing: time to half recrystallization at "
                           "recrystallization_temperature (placeholder: Cu softens from ~180 C)")
    recrystallization_temperature: Temperature = Field(
        "180 degC", description="temperature at which recrystallization_half_time is given")
    recrystallization_activation_energy: ActivationEnergy = Field(
        "100 kJ/mol", description="activation energy of recrystallization (placeholder)")
    recrystallization_exponent: float = Field(2.0, gt=0, description="JMAK exponent")

    @model_validator(mode="after")
    def _tables_match(self):
        _same_length(self.yield_stress, self.temperatures, "yield_stress")
        _same_length(self.annealed_yield_stress, self.temperatures, "annealed_yield_stress")
        return self


class PronyTerm(FrozenTable):
    weight: float = Field(gt=0, lt=1, description="normalized relaxation strength g_i")
    time: Time = Field(description="relaxation time tau_i at the reference temperature")


class Viscoelasticity(FrozenTable):
    """Generalized Maxwell (Prony series) with time-temperature superposition."""

    prony: list[PronyTerm] = Field(
        [{"weight": 0.3, "time": "10 s"}, {"weight": 0.3, "time": "1000 s"},
         {"weight": 0.2, "time": "1e5 s"}], min_length=1,
        description="Prony terms {weight, time}; the weights sum to at most 1 (placeholder "
                    "for a polyimide near its glass transition)")
    shift: Literal["wlf", "arrhenius", "none"] = Field(
        "wlf", description="time-temperature shift: WLF above the glass transition "
                           "(Arrhenius below it), Arrhenius, or none")
    reference_temperature: Temperature = Field(
        "360 degC", description="reference temperature of the relaxation times (placeholder: "
                                "polyimide Tg 360-410 C)")
    wlf_c1: float = Field(17.44, gt=0, description="WLF constant C1 (universal value)")
    wlf_c2: float = Field(51.6, gt=0, description="WLF constant C2 in K (universal value)")
    glass_transition: Temperature = Field(
        "360 degC", description="below it the WLF shift continues as Arrhenius")
    activation_energy: ActivationEnergy = Field(
        "300 kJ/mol", description="Arrhenius activation energy (shift = arrhenius, and below "
                                  "the glass transition for WLF) (placeholder)")

    @model_validator(mode="after")
    def _weights_at_most_one(self):
        if sum(term.weight for term in self.prony) > 1:
            raise rule_broken("prony", "the Prony weights must sum to at most 1")
        return self


def material_model(material) -> constitutive.MaterialModel:
    """The material-point model of a resolved material (solver.materials.library.Material)."""
    if material.behaviour == "plastic":
        p = material.plasticity or Plasticity()
        return constitutive.J2Plasticity(
            material.youngs_modulus, material.poisson_ratio,
            _table(p.temperatures, p.yield_stress), p.hardening_modulus, p.kinematic_modulus,
            constitutive.Recrystallization(
                annealed_yield_stress=_table(p.temperatures, p.annealed_yield_stress),
                half_time=p.recrystallization_half_time,
                half_time_temperature=p.recrystallization_temperature,
                activation_energy=p.recrystallization_activation_energy,
                exponent=p.recrystallization_exponent))
    if material.behaviour == "viscoelastic":
        v = material.viscoelasticity or Viscoelasticity()
        shift = None
        if v.shift == "arrhenius":
            shift = constitutive.ArrheniusShift(v.activation_energy, v.reference_temperature)
        elif v.shift == "wlf":
            shift = constitutive.WLFShift(v.wlf_c1, v.wlf_c2, v.reference_temperature,
                                          glass_transition=v.glass_transition,
                                          glassy_activation_energy=v.activation_energy)
        return constitutive.GeneralizedMaxwell(
            material.youngs_modulus, material.poisson_ratio,
            [(term.weight, term.time) for term in v.prony], shift)
    return constitutive.LinearThermoElastic(material.youngs_modulus, material.poisson_ratio)


def _table(temperatures, values):
    if len(values) == 1:
        return values[0]
    return constitutive.TemperatureTable(temperatures, values)
