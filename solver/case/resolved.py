"""The resolved case: every value a run uses, written as a case file.

`resolved_toml(case)` is `sinter check CASE --show` and every run directory's resolved.toml:
each table of the case with its defaults filled in (marked `# default`), quantities in SI
units with the unit written out ("673.15 K", "1.8e-05 m"; a comment shows the usual unit),
and each material's values with where they come from (the library entry, the case file or
the [mix] homogenization). Loaded again it is the same case: SI values are read back
exactly (pint converts a unit to itself by the factor 1).
"""

import typing
from typing import Any

from pydantic import BaseModel

from solver.case.introspect import unwrap
from solver.case.materials import OTHER_VALUES, source_before_mix
from solver.case.toml_text import key_text, value_text
from solver.case.units import KINDS, SIQuantity, ureg
from solver.geometry.registry import geometry_kind
from solver.materials.constitutive import TemperatureTable
from solver.materials.library import MECHANICAL_KEYS, library

# The unit a comment shows a quantity in beside its SI value.
_SHOWN_IN = {"length": "um", "pressure": "MPa", "temperature": "degC", "heating rate": "K/min"}

# The case's tables in the order of a case file, [materials] and [mix] written apart.
_TABLES = ("case", "geometry", "schedule", "interface", "solver", "kinetics", "furnace",
           "swelling", "pulloff", "output")


def resolved_toml(case) -> str:
    """The case as a case file with every value the run uses (see the module docstring)."""
    lines = [f"# The resolved case of {case.source}: every value the run uses, in SI units.",
             "# '# default': a value the case file leaves out. Loadable as a case file."]
    lines += [f"# WARNING: {message}" for message in case.warnings()]
    skip = _inapplicable_keys(case)
    for table in _TABLES:
        section = getattr(case, table) if table != "case" else case.case
        if section is None:
            continue
        _emit_model(section, case.raw.get(table), [table], lines, skip)
    if case.mix is not None:
        _emit_model(case.mix, case.raw.get("mix"), ["mix"], lines, skip)
    for name in _materials_to_write(case):
        _emit_material(case, name, lines)
    return "\n".join(lines).rstrip() + "\n"


def _inapplicable_keys(case) -> set[str]:
    """Keys whose defaults the case's dimension rules out: written, they would be errors."""
    if case.case.dim == 3:
        return {"case.plane"}
    return {f"geometry.{key}" for key in geometry_kind(case).only_in_3d}


def _materials_to_write(case) -> list[str]:
    """The materials behind the results, then any other the case file defines or changes."""
    given = list(case.raw.get("materials", {}))
    return list(dict.fromkeys([*case.materials_behind_results(), *given]))


# --- Tables -------------------------------------------------------------------------------


def _emit_model(model: BaseModel, raw: Any, path: list[str], lines: list[str], skip: set[str]):
    """[path] with the model's values; its sub-tables follow as [path.key]."""
    raw = raw if isinstance(raw, dict) else {}
    lines += ["", f"[{'.'.join(key_text(part) for part in path)}]"]
    tables = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None or f"{'.'.join(path)}.{name}" in skip:
            continue
        if isinstance(value, BaseModel):
            tables.append((name, value))
            continue
        kind = _quantity_kind(field.annotation, field.metadata)
        comment = _shown(value, kind)
        if name not in raw:
            comment = "default" + (f", {comment}" if comment else "")
        lines.append(_line(name, _plain(value, field.annotation, field.metadata), comment))
    for name, value in tables:
        _emit_model(value, raw.get(name), [*path, name], lines, skip)


def _emit_material(case, name: str, lines: list[str]):
    """[materials.NAME]: every value, each with where it comes from."""
    material = case.materials[name]
    raw = case.raw.get("materials", {}).get(name, {})
    # the keys the library's entry gives (its other values are the Material's defaults)
    from_library = library()[name].model_fields_set if name in library() else set()
    mixed = case.mix is not None and case.mix.material == name
    lines += ["", f"[materials.{key_text(name)}]"]
    nested = []
    for key, field in type(material).model_fields.items():
        value = getattr(material, key)
        if key == "name" or value is None or (key == "placeholders" and not value):
            continue
        if isinstance(value, BaseModel):
            nested.append((key, value))
            continue
        plain = _plain(value, field.annotation, field.metadata)
        if key == "source" and mixed and OTHER_VALUES in value:
            # [mix] puts its own source in front again when the case is loaded
            plain = source_before_mix(value)
        origin = ("case file" if key in raw else f"library: {name}" if key in from_library
                  else "default")
        if mixed and key in MECHANICAL_KEYS:
            # computed from [mix] when loaded; a value given here would be refused
            lines.append(f"# {key_text(key)} = {value_text(plain)}  # computed from [mix]")
            continue
        if key in material.placeholders:
            origin += ", PLACEHOLDER"
        shown = _shown(value, _quantity_kind(field.annotation, field.metadata))
        lines.append(_line(key, plain, f"{origin}, {shown}" if shown else origin))
    for key, value in nested:
        _emit_model(value, raw.get(key), ["materials", name, key], lines, set())


def _line(key: str, value: Any, comment: str) -> str:
    text = f"{key_text(key)} = {value_text(value)}"
    return f"{text}  # {comment}" if comment else text


# --- Values -------------------------------------------------------------------------------


def _quantity_kind(annotation: Any, metadata: list[Any]) -> str | None:
    """The quantity kind (a KINDS name) of a key, or None for plain values."""
    _, inner = unwrap(annotation)
    for item in [*metadata, *inner]:
        if isinstance(item, SIQuantity):
            return item.kind
    return None


def _plain(value: Any, annotation: Any, metadata: list[Any]) -> Any:
    """A validated value as a case file writes it: quantities as 'SI-value unit' strings."""
    kind = _quantity_kind(annotation, metadata)
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name), field.annotation, field.metadata)
                for name, field in type(value).model_fields.items()
                if getattr(value, name) is not None}
    if isinstance(value, TemperatureTable):
        return {"temperatures": [_si_text(t, "temperature") for t in value.temperatures],
                "values": [_si_text(v, kind) for v in value.values]}
    if isinstance(value, dict):
        base, _ = unwrap(annotation)
        item = typing.get_args(base)[-1] if typing.get_args(base) else Any
        return {key: _plain(entry, item, []) for key, entry in value.items()}
    if isinstance(value, list | tuple):
        base, _ = unwrap(annotation)
        item = typing.get_args(base)[0] if typing.get_args(base) else Any
        return [_plain(entry, item, []) for entry in value]
    if isinstance(value, float) and kind is not None:
        return _si_text(value, kind)
    return value


def _si_text(value: float, kind: str | None) -> Any:
    """'673.15 K': the SI value exactly (repr), with the unit; a plain number without one."""
    if kind is None:
        return float(value)
    return f"{float(value)!r} {KINDS[kind].si_unit}"


def _shown(value: Any, kind: str | None) -> str:
    """The value in the usual unit of its kind, for a comment ('400 degC'); '' if none."""
    if not isinstance(value, float):
        return ""
    if kind == "time":
        unit = "h" if value >= 3600 else "min" if value >= 60 else "s"
    elif kind == "pressure" and abs(value) >= 1e9:
        unit = "GPa"
    elif kind == "length" and abs(value) >= 1e-3:
        unit = "mm"
    elif kind in _SHOWN_IN:
        unit = _SHOWN_IN[kind]
    else:
        return ""
    converted = ureg.Quantity(value, ureg.parse_units(KINDS[kind].si_unit)).to(unit).magnitude
    return f"{converted:.6g} {unit}"
