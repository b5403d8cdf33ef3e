"""What every table of the case file shares: unknown keys are errors, and a broken rule
between keys is reported at the key it is about.

Every schema model derives from `Table` (or `FrozenTable`) and reports a failed cross-field
rule with `rule_broken`; solver.case.loading turns both into the one-line CaseError.
"""

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class Table(BaseModel):
    """A TOML table of the case file: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class FrozenTable(Table):
    """A table that cannot change once validated, with its defaults validated like the
    file's values (a material's behaviour: the library's entries are shared)."""

    model_config = ConfigDict(frozen=True, validate_default=True)


def rule_broken(key: str, message: str) -> PydanticCustomError:
    """A cross-field rule that failed; `key` is relative to the model that checks the rule."""
    return PydanticCustomError("case_rule", "{message}", {"message": message, "key": key})


def um(length: float) -> str:
    """A length (m) as a rule's message writes it: '2.6 um'."""
    return f"{length * 1e6:g} um"
