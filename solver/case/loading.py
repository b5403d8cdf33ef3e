"""Loading a case file: read, validate, resolve; every problem becomes one CaseError.

The CaseError names the file, the dotted key path as the user wrote it
(`geometry.layers[1].thickness`) and what was expected, in one line.
"""

import difflib
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from solver.case.casefile import Case, CaseFile
from solver.case.introspect import (
    expectation,
    is_model,
    is_union,
    members_by_tag,
    show,
    unwrap,
)
from solver.case.toml_input import TomlProblem, parse_toml
from solver.errors import CaseError


def load_case(path: str | Path) -> Case:
    """Read, validate and resolve a case file; any problem is one CaseError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as error:  # ValueError: a NUL in the name
        raise CaseError(path, "(file)", f"cannot read the case file: {error}") from None
    return load_case_text(text, file=path)


def load_case_text(text: str, *, file: str | Path = "<case>") -> Case:
    """Validate case-file text; `file` names it in messages and becomes `Case.source`."""
    try:
        raw = parse_toml(text)
    except TomlProblem as problem:
        raise CaseError(file, problem.key, problem.message) from None
    try:
        # a file the case names (geometry.file) is relative to the case file
        validated = CaseFile.model_validate(raw, context={"case_dir": Path(file).parent})
    except ValidationError as error:
        raise _case_error(error, file) from None
    return Case(
        case=validated.case,
        geometry=validated.geometry,
        materials=validated._resolved_materials,
        schedule=validated.schedule,
        interface=validated.interface,
        solver=validated.solver,
        kinetics=validated.kinetics,
        furnace=validated.furnace,
        source=Path(file),
        raw=raw,
        text=text,
        mix_properties=validated._mix_properties,
        swelling=validated.swelling,
        pulloff=validated.pulloff,
        output=validated.output,
        mix=validated.mix,
    )


# --- From pydantic's errors to the user's keys --------------------------------------------


@dataclass
class _Location:
    key: str  # as the user writes it: geometry.layers[1].thickness
    owner: type[BaseModel] | None  # the table the last key belongs to
    annotation: Any  # what is expected at the key
    metadata: list[Any]  # Annotated metadata of that (SIQuantity, ...)
    field: FieldInfo | None


def _locate(loc: Sequence[str | int]) -> _Location:
    """Follow a pydantic error location through the schema, dropping union tags."""
    key = ""
    owner: type[BaseModel] | None = None
    node: Any = CaseFile
    metadata: list[Any] = []
    field: FieldInfo | None = None
    discriminator: str | None = None
    for part in loc:
        node, extra = unwrap(node)
        metadata += extra
        if is_union(node):
            # pydantic names the union member it tried; the user never wrote that tag.
            node = members_by_tag(node, discriminator).get(str(part))
            discriminator = None
            continue
        if isinstance(part, int):
            key += f"[{part}]"
            node = typing.get_args(node)[0] if typing.get_origin(node) is list else None
        else:
            key = f"{key}.{part}" if key else part
            if is_model(node):
                owner, field = node, node.model_fields.get(part)
                node = field.annotation if field else None
                metadata = list(field.metadata) if field else []
                discriminator = field.discriminator if field else None
                continue
            node = typing.get_args(node)[1] if typing.get_origin(node) is dict else None
        metadata, field = [], None
    node, extra = unwrap(node)
    return _Location(key, owner, node, metadata + extra, field)


def _describe(error: Any) -> tuple[str, str]:
    """(key path, message) for one pydantic error."""
    where = _locate(error["loc"])
    kind, context = error["type"], error.get("ctx", {})
    got = show(error.get("input"))
    if kind == "case_rule":
        key = f"{where.key}.{context['key']}" if where.key else context["key"]
        return key, context["message"]
    if kind == "extra_forbidden":
        nearest = _nearest_key(error, where)
        if nearest is not None:
            return where.key, f"unknown key; did you mean {nearest}?"
        known = ", ".join(where.owner.model_fields) if where.owner else ""
        return where.key, f"unknown key; known keys here: {known}"
    if kind == "missing":
        expected = expectation(where.annotation, where.metadata)
        about = f" ({where.field.description})" if where.field and where.field.description else ""
        return where.key, f"required key is missing: expected {expected}{about}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_key = f"{where.key}.{context['discriminator'].strip(chr(39))}"
        expected = expectation(where.annotation, where.metadata)
        expected = expected.removeprefix("a table with kind = ")
        if kind == "union_tag_not_found":
            return tag_key, f"required key is missing: expected {expected}"
        return tag_key, f"expected {expected}, got {show(context['tag'])}"
    if kind in ("quantity", "range", "name"):
        return where.key, error["msg"]
    if kind == "too_short":
        return where.key, f"expected at least {context['min_length']} entry, got none"
    if kind == "string_too_short":
        return where.key, "expected a non-empty string"
    if kind == "greater_than":
        return where.key, f"expected a number greater than {context['gt']}, got {got}"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        return where.key, f"expected {expectation(where.annotation, where.metadata)}, got {got}"
    return where.key, f"{error['msg']}, got {got}"


MAX_PROBLEMS = 20  # listed in one CaseError; the rest are counted


def _nearest_key(error: Any, where: _Location) -> str | None:
    """The known key of the table closest to an unknown one (a misspelling), if any."""
    if where.owner is None:
        return None
    unknown = str(error["loc"][-1])
    nearest = difflib.get_close_matches(unknown, list(where.owner.model_fields), n=1,
                                        cutoff=0.6)
    return nearest[0] if nearest else None


def _case_error(error: ValidationError, file: str | Path) -> CaseError:
    """One CaseError listing every problem of a ValidationError (up to MAX_PROBLEMS).

    Unknown keys come first: a misspelt key also makes the intended one "missing", and the
    misspelling is what the user has to fix; the missing key its suggestion names is left
    out.
    """
    errors = sorted(error.errors(), key=lambda problem: problem["type"] != "extra_forbidden")
    suggested = set()
    for problem in errors:
        if problem["type"] == "extra_forbidden":
            where = _locate(problem["loc"])
            nearest = _nearest_key(problem, where)
            if nearest is not None:
                suggested.add((*map(str, problem["loc"][:-1]), nearest))
    problems = list(dict.fromkeys(
        _describe(problem) for problem in errors
        if not (problem["type"] == "missing" and tuple(map(str, problem["loc"])) in suggested)))
    (key, message), *more = [(key or "(top level)", message) for key, message in problems]
    return CaseError(file, key, message, more=more[:MAX_PROBLEMS - 1],
                     omitted=max(0, len(problems) - MAX_PROBLEMS))
