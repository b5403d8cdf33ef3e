"""TOML text of a parsed case file (the subset case files use), for installations without
tomli_w (it is no dependency): the sweep's case files, the resolved case."""

import json
import re
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps(document: dict) -> str:
    """TOML for the subset case files use: tables, arrays (of inline tables), strings,
    numbers, booleans; for installations without tomli_w (it is no dependency)."""
    lines: list[str] = []
    _emit_table(document, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit_table(table: dict, path: list[str], lines: list[str]):
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (values or not tables):
        lines.append(f"[{'.'.join(key_text(k) for k in path)}]")
    lines.extend(f"{key_text(k)} = {value_text(v)}" for k, v in values.items())
    if path or values:
        lines.append("")
    for key, sub in tables.items():
        _emit_table(sub, [*path, key], lines)


def key_text(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # Python's repr of int/float (inf, nan included) is valid TOML
    if isinstance(value, str):
        # A JSON string is a TOML basic string: the same escapes, \uXXXX included.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key_text(k)} = {value_text(v)}"
                                for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to a case file: {value!r}")
