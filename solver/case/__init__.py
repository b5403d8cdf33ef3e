"""Case files: the TOML schema, its validation, and the Case the solver runs.

    from solver.case import load_case, load_case_text, Case

- tables.py: the base of every table (unknown keys are errors) and `rule_broken`, the
  error of a rule between keys; units.py: quantities with units -> SI floats.
- casefile.py: the whole file (CaseFile: its tables and the rules across them) and Case.
- schedule.py, materials.py ([materials.NAME], [mix]), interface.py, solver_section.py: one
  table each; [geometry] is the registered kinds' (solver/geometry/registry.py), [kinetics],
  [furnace], [swelling] and [pulloff] are next to their physics.
- loading.py: load_case / load_case_text, and pydantic's errors as one line naming the key.
- introspect.py: what a key expects, read from the annotations; keys_doc.py: the table of
  docs/case-keys.md.
"""

# The entry points load on first use: the physics modules import solver.case.units and
# solver.case.tables, which must not pull the whole schema (which imports the physics' tables).
_ENTRY_POINTS = {"load_case": "solver.case.loading", "load_case_text": "solver.case.loading",
                 "Case": "solver.case.casefile"}

__all__ = list(_ENTRY_POINTS)


def __getattr__(name: str):
    if name in _ENTRY_POINTS:
        import importlib

        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'solver.case' has no attribute '{name}'")
