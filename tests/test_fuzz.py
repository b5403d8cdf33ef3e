"""Hostile case and sweep files by the thousand through the command line's main(argv):
`sinter check CASE` and `sinter sweep SWEEP --dry-run`. The only allowed outcomes are
success (exit 0) and the errors, one line per problem, with exit 2; a traceback, another
status or an input that takes longer than HANG_SECONDS fails.

The inputs are shipped cases and sweeps mutated key by key (wrong types, huge and tiny
numbers, NaN and infinities, unicode, dates, deep nesting, missing and unknown keys), their
text mutated byte by byte, empty and binary files and deeply nested TOML. The examples are
derandomized and no example database is kept, so every CI run tries the same inputs:
CASE_EXAMPLES + SWEEP_EXAMPLES = 10,000 (`make fuzz` multiplies them by
SINTERFEM_FUZZ_SCALE=10).
"""

import contextlib
import io
import math
import os
import signal
import tempfile
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from solver.cli import main

from conftest import CASES

SCALE = int(os.environ.get("SINTERFEM_FUZZ_SCALE", "1"))
CASE_EXAMPLES = 8_500 * SCALE
SWEEP_EXAMPLES = 1_500 * SCALE
HANG_SECONDS = 20

SHIPPED = {path: tomllib.loads(path.read_text()) for path in sorted(CASES.glob("*.toml"))}
CASE_TEXTS = [path.read_bytes() for path, document in SHIPPED.items() if "sweep" not in document]
SWEEP_FILES = [path for path, document in SHIPPED.items() if "sweep" in document]

# No explain phase: it records the branches of every example, gigabytes over thousands.
FUZZ_SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=False,
                     suppress_health_check=list(HealthCheck),
                     phases=[Phase.explicit, Phase.generate, Phase.shrink])

# --- Hostile values ---------------------------------------------------------------------

UNITS = ["um", "nm", "m", "mm", "degC", "K", "degF", "K/min", "K/s", "h", "min", "s", "GPa",
         "MPa", "Pa", "1/K", "J/m^2", "kg/m^3", "", " ", "furlong", "um**1000", "um^-1",
         "1/0", "percent", "dimensionless", "um um", "(um", "degC/h", "ÅngstrÖm", "\u00b5m"]
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, math.nan,
                     math.inf, -math.inf, 1e-16, 1 - 1e-16]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 2, 3, -1, 2**63 - 1, -(2**63), 10**6]),
)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
QUANTITIES = st.builds(
    lambda number, unit, spaced: f"{number}{' ' if spaced else ''}{unit}",
    st.one_of(NUMBERS, st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_000", ""])),
    st.sampled_from(UNITS), st.booleans())
NAMES = st.sampled_from(["copper", "mix", "polyimide", "silicon", "lithium", "layers",
                         "recurved", "plain", "rough", "flat", "particles", "films", "strain",
                         "generalized", "loguniform", "xdmf", "vtx", "", "../../x", "/abs",
                         "a/b", "..", ".", "con", "\x00", "\u202e", "名前"])
DATES = st.one_of(st.datetimes(), st.dates(), st.times())
SCALARS = st.one_of(NUMBERS, QUANTITIES, TEXT, NAMES, st.booleans(), DATES)
KEYS = st.one_of(TEXT.filter(bool), st.sampled_from(
    ["name", "kind", "material", "thickness", "to", "rate", "hold", "dim", "fields", "x"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12)


def _deep(depth: int, leaf, table: bool):
    value = leaf
    for _ in range(depth):
        value = {"a": value} if table else [value]
    return value


HOSTILE = st.one_of(
    SCALARS, VALUES,
    st.builds(_deep, st.integers(1, 60), SCALARS, st.booleans()),
    # built afresh: a later mutation may add to them
    st.builds(dict), st.builds(list), st.builds(lambda: [{}]))


# --- Mutations of parsed TOML -------------------------------------------------------------


def _paths(document) -> list[tuple]:
    """Every key path in a parsed TOML document, tables and lists included, in document
    order (iteratively: a mutated document may nest hundreds deep)."""
    paths, pending = [], [((), document)]
    while pending:
        path, node = pending.pop()
        paths.append(path)
        items = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        pending.extend(reversed([((*path, key), value) for key, value in items]))
    return paths


def _index(data, count: int, label: str) -> int:
    """An index below count, drawn from a range that does not depend on count: hypothesis
    requires the same draws to have the same bounds from one example to the next."""
    return data.draw(st.integers(0, 2**20), label=label) % count


def _mutate(data, document):
    """One mutation of the document in place: a value replaced, a key deleted or added."""
    paths = _paths(document)[1:]
    if not paths:
        return
    path = paths[_index(data, len(paths), "path")]
    parent = document
    for token in path[:-1]:
        parent = parent[token]
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="action")
    if action == "replace":
        parent[path[-1]] = data.draw(HOSTILE, label="value")
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(KEYS, label="new key")] = data.draw(HOSTILE, label="new value")
    else:
        parent.insert(path[-1], data.draw(HOSTILE, label="new entry"))


def _toml(document) -> bytes:
    """TOML text of a mutated document; a document tomli_w cannot write (a key that is not
    a string, or nesting beyond its recursion) is fed as its repr, still hostile text."""
    try:
        return tomli_w.dumps(document).encode()
    except (TypeError, ValueError, RecursionError):
        return repr(document).encode("utf-8", "replace")


# --- Mutations of text --------------------------------------------------------------------


def _byte_mutation(data, text: bytes) -> bytes:
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        position = _index(data, len(text) + 1, "at")
        kind = data.draw(st.sampled_from(["insert", "delete", "replace", "cut"]), label="edit")
        chunk = data.draw(st.one_of(st.binary(max_size=6), st.sampled_from(
            [b"[", b"]", b"{", b"}", b"=", b'"', b"'", b"\n", b"#", b".", b",", b"\\",
             b"\xff", b"\x00", b"nan", b"inf", b"1e999", b"\xc3\x28", "é".encode()])),
            label="bytes")
        if kind == "insert":
            text = text[:position] + chunk + text[position:]
        elif kind == "delete":
            text = text[:position] + text[position + len(chunk) + 1:]
        elif kind == "replace":
            text = text[:position] + chunk + text[position + len(chunk):]
        else:
            text = text[:position]
    return text


NESTED_TEXT = st.builds(
    lambda depth, shape: {
        "array": b"x = " + b"[" * depth + b"]" * depth,
        "inline": b"x = " + b"{a = " * depth + b"1" + b"}" * depth,
        "tables": b"[" + b".".join([b"a"] * depth) + b"]\nx = 1\n",
        "unclosed": b"x = " + b"[" * depth,
    }[shape],
    st.integers(1, 200_000), st.sampled_from(["array", "inline", "tables", "unclosed"]))


# --- Running the command line -------------------------------------------------------------


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run_cli(argv) -> tuple[int, str]:
    """main(argv) with its output captured; fails on an exception, a hang or another
    outcome than success or error lines (one per problem) with exit 2."""
    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
    except Hang:
        pytest.fail(f"{argv}: no answer within {HANG_SECONDS} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    stderr = err.getvalue()
    assert status in (0, 2), (status, stderr)
    assert "Traceback" not in stderr, stderr
    if status == 2:
        # one line per problem (a case file's up to 20), the last lines written
        errors = [line for line in stderr.splitlines() if line.startswith("sinter: error: ")]
        assert 1 <= len(errors) <= 21 and stderr.endswith("\n".join(errors) + "\n"), stderr
    return status, stderr


@pytest.fixture(scope="module")
def workdir():
    # in memory where there is /dev/shm: rewriting a file in /tmp takes milliseconds here
    memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="sinter-fuzz-", dir=memory) as directory:
        yield Path(directory)


CASE_INPUTS = st.one_of(
    st.just("document"), st.just("document"), st.just("document"), st.just("text"),
    st.just("binary"), st.just("nested"), st.just("empty"))


def test_fuzz_case_files(workdir):
    statuses = []

    @settings(max_examples=CASE_EXAMPLES, **FUZZ_SETTINGS)
    @given(st.data())
    def check(data):
        kind = data.draw(CASE_INPUTS, label="kind")
        if kind == "document":
            document = tomllib.loads(data.draw(st.sampled_from(CASE_TEXTS)).decode())
            for _ in range(data.draw(st.integers(1, 3), label="mutations")):
                _mutate(data, document)
            text = _toml(document)
        elif kind == "text":
            text = _byte_mutation(data, data.draw(st.sampled_from(CASE_TEXTS)))
        elif kind == "binary":
            text = data.draw(st.binary(max_size=2000))
        elif kind == "nested":
            text = data.draw(NESTED_TEXT)
        else:
            text = b""
        path = workdir / "fuzzed.toml"
        path.write_bytes(text)
        statuses.append(run_cli(["check", str(path)])[0])

    check()
    # both outcomes occur: the fuzzing is not all rejected at the first byte
    assert len(statuses) >= CASE_EXAMPLES and 0 in statuses and 2 in statuses


SWEEP_SETTINGS = st.fixed_dictionaries({}, optional={
    "method": st.sampled_from(["grid", "lhs", "sobol", "x", 1]),
    "samples": st.sampled_from([1, 2, 3, 0, -1, 2**40, 2**63 - 1, 1.5, "3", True]),
    "seed": st.sampled_from([0, -1, 2**63 - 1, 1.5, "x"]),
    "ranks": st.sampled_from([1, 2, 0, -1, 2**63 - 1]),
    "count": st.sampled_from([1, 2, 0, -1, 2**31, 2**63 - 1, 10**9, 1.5, True]),
    "distribution": st.sampled_from(["uniform", "loguniform", "normal", 1]),
})


def _sweep_document(data) -> dict:
    """A shipped sweep with absolute base and reference paths, its parameters cut to at
    most three values each (so that an example expands to a few cases), then its own
    numbers (method, samples, counts, ...) set to hostile ones or not, and mutated."""
    source = data.draw(st.sampled_from(SWEEP_FILES), label="sweep")
    document = tomllib.loads(source.read_text())
    table = document["sweep"]
    table["base"] = str(CASES / table["base"])
    if "references" in table and data.draw(st.booleans(), label="keep references"):
        table["references"] = [str(CASES / r) for r in table["references"]]
    else:
        table.pop("references", None)
    chosen = data.draw(st.one_of(st.just({}), SWEEP_SETTINGS), label="settings")
    table.update({key: chosen[key] for key in ("method", "samples", "seed", "ranks")
                  if key in chosen})
    for key, spec in document["parameters"].items():
        if isinstance(spec, list):
            document["parameters"][key] = spec[:data.draw(st.integers(1, 3), label="values")]
        else:
            spec["count"] = data.draw(st.integers(1, 3), label="count")
            spec.update({key: chosen[key] for key in ("count", "distribution") if key in chosen})
    for _ in range(data.draw(st.integers(0, 3), label="mutations")):
        _mutate(data, document)
    return document


def test_fuzz_sweep_files(workdir):
    statuses = []

    @settings(max_examples=SWEEP_EXAMPLES, **FUZZ_SETTINGS)
    @given(st.data())
    def check(data):
        if data.draw(st.integers(0, 3), label="kind") == 0:
            text = _byte_mutation(data, data.draw(st.sampled_from(SWEEP_FILES)).read_bytes())
        else:
            text = _toml(_sweep_document(data))
        path = workdir / "fuzzed-sweep.toml"
        path.write_bytes(text)
        statuses.append(run_cli(["sweep", str(path), "--dry-run", "--out",
                                 str(workdir / "sweep-out")])[0])
        assert not (workdir / "sweep-out").exists()  # a dry run writes nothing

    check()
    assert len(statuses) >= SWEEP_EXAMPLES and 0 in statuses and 2 in statuses
