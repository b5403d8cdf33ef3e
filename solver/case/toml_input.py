"""TOML text from a user's file parsed into tables, with the limits that keep hostile text
from costing more than an error: Python's TOML parser recurses once per level of nesting
and takes time quadratic in the parts of a dotted key, so a file of a few hundred kilobytes
could exhaust the stack or run for minutes. A case or sweep file nests a few levels deep.
"""

import itertools
import re
import tomllib
from typing import Any

MAX_CHARACTERS = 1_000_000  # the largest shipped case is ~3 kB
MAX_DEPTH = 32  # arrays and inline tables within one another; shipped cases go 2 deep
MAX_KEY_PARTS = 32  # parts of one dotted key or table header

# What can hold a bracket that does not nest: strings (multi-line first) and comments.
_SKIPPED = re.compile(
    r'"""(?:[^\\]|\\.)*?"""|\'\'\'.*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*',
    re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
_LONG_DOTTED_KEY = re.compile(rf"(?:{_KEY_PART}[ \t]*\.[ \t]*){{{MAX_KEY_PARTS}}}")


class TomlProblem(ValueError):
    """Why a text is refused: `key` says where ("(TOML syntax)" or "(file)")."""

    def __init__(self, key: str, message: str):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


def parse_toml(text: str) -> dict[str, Any]:
    """The tables of a TOML text; any problem with it is one TomlProblem."""
    if len(text) > MAX_CHARACTERS:
        raise TomlProblem("(file)", f"{len(text)} characters: more than a case or sweep file "
                          f"has (at most {MAX_CHARACTERS})")
    if _LONG_DOTTED_KEY.search(text):
        raise TomlProblem("(TOML syntax)", f"a dotted key or table header of more than "
                          f"{MAX_KEY_PARTS} parts")
    if _bracket_depth(text) > MAX_DEPTH:
        raise TomlProblem("(TOML syntax)", f"arrays or inline tables nested more than "
                          f"{MAX_DEPTH} deep")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise TomlProblem("(TOML syntax)", str(error)) from None


def _bracket_depth(text: str) -> int:
    """The deepest nesting of brackets and braces outside strings and comments: the
    parser's recursion, known before it recurses."""
    brackets = _NOT_BRACKET.sub("", _SKIPPED.sub("", text))
    return max(itertools.accumulate(map(_NESTING.__getitem__, brackets)), default=0)
