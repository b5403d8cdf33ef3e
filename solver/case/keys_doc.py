"""The keys table of docs/case-keys.md, generated from the schema (tests/test_case.py checks
that the committed file contains it)."""

import json
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from solver.case.casefile import CaseFile
from solver.case.introspect import expectation, is_model, is_union, members_by_tag, unwrap
from solver.case.units import KINDS, SIQuantity


def _default_text(field: FieldInfo, metadata: list[Any]) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and "default_text" in extra:
        return str(extra["default_text"])
    if field.default_factory is not None:
        return "(table)"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "-"
    if isinstance(field.default, str) and not any(isinstance(m, SIQuantity) for m in metadata):
        return f'`"{field.default}"`'  # as it is written in TOML
    return f"`{field.default}`"


def _unit_text(annotation: Any, metadata: list[Any]) -> str:
    for item in metadata:
        if isinstance(item, SIQuantity) and item.kind is None:  # a number (or its table)
            return "number"
        if isinstance(item, SIQuantity):
            kind = KINDS[item.kind]
            return f"{kind.noun} [{kind.si_unit}], e.g. `{kind.example}`"
    if typing.get_origin(annotation) is Literal:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in typing.get_args(annotation))
    return expectation(annotation, metadata).removeprefix("a ").removeprefix("an ")


def _holds_tables(annotation: Any) -> bool:
    """A table, or a union of tables (not a union of plain values such as int | str)."""
    return is_model(annotation) or (is_union(annotation) and any(
        is_model(unwrap(member)[0]) for member in typing.get_args(annotation)))


def _key_rows(model: type[BaseModel], prefix: str, note: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        annotation, metadata = unwrap(field.annotation)
        metadata += field.metadata
        if typing.get_origin(annotation) in (list, dict):
            item, item_metadata = unwrap(typing.get_args(annotation)[-1])
            inner = f"{key}[]" if typing.get_origin(annotation) is list else f"{key}.NAME"
            if _holds_tables(item):
                rows += _union_rows(item, inner, field.discriminator, note)
                continue
        if _holds_tables(annotation):
            rows += _union_rows(annotation, key, field.discriminator, note)
            continue
        cells = [
            f"`{key}`",
            _unit_text(annotation, metadata),
            _default_text(field, metadata),
            f"{note}{field.description or ''}",
        ]
        rows.append(f"| {' | '.join(cells)} |")
    return rows


def _union_rows(annotation: Any, key: str, discriminator: str | None, note: str) -> list[str]:
    if is_model(annotation):
        return _key_rows(annotation, key, note)
    rows = []
    for tag, model in members_by_tag(annotation, discriminator).items():
        rows += _key_rows(model, key, f"{note}({tag}) ")
    return rows


def keys_table_markdown() -> str:
    """A Markdown table of every case-file key, generated from the schema."""
    header = [
        "| key | unit kind | default | meaning |",
        "|---|---|---|---|",
    ]
    return "\n".join(header + _key_rows(CaseFile, "")) + "\n"
