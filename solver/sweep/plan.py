"""Parameter sweeps: a sweep file expands into concrete case files, run by a backend.

A sweep file names a base case and parameters by their key path in the case file
(`geometry.layers[0].thickness`, `schedule.steps[1].hold`); each parameter is a list of
values, a range `{ from, to, count }`, or a distribution `{ from, to }` (uniform, or
`distribution = "loguniform"`) for Latin hypercube and Sobol samples. Every concrete case is
named by the hash of its content, so an edited sweep reuses whatever results still apply.

Layout of a sweep directory:
    sweep.toml            the sweep file as given
    plan.json             the expanded cases: name, hash, parameter values, validation error
    cases/NAME.toml       each concrete case, a valid case file on its own
    runs/NAME/            `sinter run` results of each case (summary.json marks completion)
    status/NAME.json      the record of each attempt: ok/failed, error, wall time, provenance
    slurm/                sbatch scripts, job ids and task logs (slurm backend)
    results.csv           one row per case (collect)
    plots/*.png           design maps (plot)
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import math
import re
import shutil
import tomllib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solver.case.toml_input import TomlProblem, parse_toml
from solver.case.toml_text import dumps as toml_dumps
from solver.errors import UserError

logger = logging.getLogger(__name__)

METHODS = ("grid", "lhs", "sobol")
DISTRIBUTIONS = ("uniform", "loguniform")
# More cases than this is a mistake in the sweep file (a count or samples off by orders of
# magnitude), refused before any is expanded; each case is validated on expansion.
MAX_CASES = 10_000
# Keys that only name a case: left out of its hash, so renaming never forces a rerun.
NAMING_KEYS = ("name", "description")


class SweepError(UserError):
    """A sweep file that cannot be expanded: names the file, the key and what is wrong."""

    def __init__(self, file, key: str, problem: str):
        super().__init__(f"{file}: {key}: {problem}")


# --- Key paths ----------------------------------------------------------------------------

_SEGMENT = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


def parse_key_path(key: str) -> tuple[str | int, ...]:
    """'schedule.steps[1].hold' -> ('schedule', 'steps', 1, 'hold')."""
    tokens: list[str | int] = []
    for segment in key.split("."):
        match = _SEGMENT.fullmatch(segment.strip())
        if match is None:
            raise ValueError(f"not a key path like 'geometry.layers[0].thickness': '{key}'")
        tokens.append(match.group(1))
        tokens.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(tokens)


def set_key_path(document: dict, tokens: tuple[str | int, ...], value: Any):
    """Set a value in parsed TOML; missing tables are created, missing list entries are not."""
    container: Any = document
    for position, token in enumerate(tokens):
        last = position == len(tokens) - 1
        where = _show_path(tokens[:position]) or "the case"
        if isinstance(token, int):
            if not isinstance(container, list):
                raise ValueError(f"{where} is not a list")
            if token >= len(container):
                raise ValueError(f"{where} has {len(container)} entries, no [{token}]")
        elif not isinstance(container, dict):
            raise ValueError(f"{where} is not a table")
        elif not last and token not in container:
            if isinstance(tokens[position + 1], int):
                raise ValueError(f"the base case has no list {_show_path(tokens[:position + 1])}")
            container[token] = {}
        if last:
            container[token] = value
        else:
            container = container[token]


def _show_path(tokens) -> str:
    text = ""
    for token in tokens:
        text += f"[{token}]" if isinstance(token, int) else f".{token}" if text else token
    return text


# --- Quantities ---------------------------------------------------------------------------

_NUMBER_THEN_UNITS = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _split_quantity(value: Any) -> tuple[float, str] | None:
    """(magnitude, units as written) of a number or a quantity string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value), ""
    if isinstance(value, str):
        match = _NUMBER_THEN_UNITS.fullmatch(value)
        if match is not None:
            return float(match.group(1)), match.group(2)
    return None


def _quantity(magnitude: float, units: str):
    from solver.case.units import ureg

    return ureg.Quantity(magnitude, ureg.parse_units(units) if units else "dimensionless")


def to_si(value: Any) -> Any:
    """A parameter value as an SI number (pint's base units); names stay strings."""
    split = _split_quantity(value)
    if split is None:
        return value
    magnitude, units = split
    if not units:
        return magnitude
    try:
        return float(_quantity(magnitude, units).to_base_units().magnitude)
    except Exception:  # pint raises many types on text that is not a unit: keep it as written
        return value


def si_and_written_units(value: Any) -> tuple[str, str]:
    """(the SI unit of a parameter value's column, its unit as written): ("K", "degC") for
    "300 degC", ("m", "um") for "1.4 um"; ("", "") for a number or a name."""
    split = _split_quantity(value)
    if split is None or not split[1]:
        return "", ""
    from solver.case.units import KINDS

    try:
        quantity = _quantity(1.0, split[1])
    except Exception:  # pint raises many types on text that is not a unit
        return "", ""
    for kind in KINDS.values():
        if quantity.check(kind.dimensionality):
            return kind.si_unit, split[1]
    return f"{quantity.to_base_units().units:~}", split[1]


def _format(magnitude: float, units: str) -> Any:
    """A value as it goes into a case file: '2.5 um', or a plain number without units."""
    if not units:
        return float(f"{magnitude:.12g}")
    return f"{magnitude:.10g} {units}"


# --- Parameters ---------------------------------------------------------------------------


@dataclass
class Parameter:
    """One swept key: discrete levels, or a continuous distribution between two values."""

    key: str
    tokens: tuple[str | int, ...]
    levels: list[Any] | None = None  # values as written into case files
    low: float = 0.0  # continuous: magnitudes in `units`
    high: float = 0.0
    units: str = ""
    distribution: str = "uniform"

    def at(self, u: float) -> Any:
        """The value at the unit-interval coordinate u of a sample."""
        if self.levels is not None:
            return self.levels[min(int(u * len(self.levels)), len(self.levels) - 1)]
        if self.distribution == "loguniform":
            return _format(self.low * (self.high / self.low) ** u, self.units)
        return _format(self.low + u * (self.high - self.low), self.units)


def _parameter(file, key: str, spec: Any, method: str) -> Parameter:
    try:
        tokens = parse_key_path(key)
    except ValueError as error:
        raise SweepError(file, f"parameters.{key}", str(error)) from None
    where = f"parameters.{key}"
    if isinstance(spec, list):
        if not spec:
            raise SweepError(file, where, "an empty list of values")
        return Parameter(key, tokens, levels=list(spec))
    if not isinstance(spec, dict):
        raise SweepError(file, where, "expected a list of values, { from, to, count } or "
                         f"{{ from, to }}, got {spec!r}")
    unknown = set(spec) - {"from", "to", "count", "distribution"}
    if unknown or not {"from", "to"} <= set(spec):
        raise SweepError(file, where, "expected the keys from, to and optionally count "
                         f"or distribution, got {', '.join(sorted(spec))}")
    low, high = _split_quantity(spec["from"]), _split_quantity(spec["to"])
    if low is None or high is None:
        raise SweepError(file, where, "from and to must be numbers or quantities with units "
                         f"(e.g. '2 um'), got {spec['from']!r} and {spec['to']!r}")
    units = low[1]
    if bool(low[1]) != bool(high[1]):
        raise SweepError(file, where, "from and to must both have units or both be numbers")
    try:
        high_value = _quantity(*high).to(_quantity(1.0, units).units).magnitude if units \
            else high[0]
    except Exception as error:
        raise SweepError(file, where, f"cannot convert {spec['to']!r} to the units of "
                         f"{spec['from']!r} ({error})") from None
    distribution = spec.get("distribution", "uniform")
    if distribution not in DISTRIBUTIONS:
        raise SweepError(file, f"{where}.distribution",
                         f"expected one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}")
    if distribution == "loguniform" and (low[0] <= 0 or high_value <= 0):
        raise SweepError(file, where, "a loguniform distribution needs positive from and to")
    if "count" in spec:
        count = spec["count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CASES:
            raise SweepError(file, f"{where}.count",
                             f"expected a positive integer up to {MAX_CASES}, got {count!r}")
        if count == 1:
            positions = [0.0]
        else:
            positions = [k / (count - 1) for k in range(count)]
        continuous = Parameter(key, tokens, low=low[0], high=high_value, units=units,
                               distribution=distribution)
        return Parameter(key, tokens, levels=[continuous.at(u) for u in positions])
    if method == "grid":
        raise SweepError(file, where, "a grid needs a count for a range: "
                         "{ from = ..., to = ..., count = N }")
    return Parameter(key, tokens, low=low[0], high=high_value, units=units,
                     distribution=distribution)


# --- Sweep files --------------------------------------------------------------------------


@dataclass
class SweepCase:
    """One concrete case of a sweep."""

    index: int
    name: str
    hash: str  # sha256 of the case content without its naming keys
    values: dict[str, Any]  # parameter values as written into the case file
    si: dict[str, Any]  # the same in SI numbers
    error: str | None = None  # why the case is not valid (then it is never run)
    reference: str | None = None  # a reference design's case name (plain, flat), not a sample
    document: dict | None = field(default=None, repr=False)  # the case; not in plan.json


@dataclass
class Sweep:
    """An expanded sweep file."""

    file: str
    base: str
    method: str
    samples: int | None
    seed: int
    ranks: int
    parameters: list[str]
    slurm: dict[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    references: list[str] = field(default_factory=list)  # reference case files
    cases: list[SweepCase] = field(default_factory=list)
    fields: bool = False  # the cases write the fields their [output] asks for (else none)

    def to_json(self) -> str:
        data = asdict(self)
        for case in data["cases"]:
            del case["document"]
        return json.dumps(data, indent=1, default=str) + "\n"  # TOML dates as text

    @classmethod
    def from_json(cls, text: str) -> Sweep:
        data = json.loads(text)
        data["cases"] = [SweepCase(**case) for case in data["cases"]]
        return cls(**data)


_SWEEP_KEYS = {"base", "method", "samples", "seed", "ranks", "references", "fields"}
# [slurm] keys and the type of their values
_SLURM_KEYS = {"partition": str, "time": str, "cpus_per_task": int, "max_parallel": int,
               "options": list, "setup": list, "launcher": str}
_CHECK_KEYS = {"name", "key", "min", "max"}


def load_sweep(path: str | Path, out: str | Path) -> Sweep:
    """Read a sweep file and expand it into cases named for the directory `out`.

    Each case is validated as it would be at out/cases/NAME.toml; nothing is written.
    """
    path = Path(path)
    try:
        document = parse_toml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise SweepError(path, "(file)", f"cannot read the sweep file: {error}") from None
    except TomlProblem as problem:
        raise SweepError(path, problem.key, problem.message) from None
    unknown = set(document) - {"sweep", "parameters", "slurm", "checks"}
    if unknown:
        raise SweepError(path, ", ".join(sorted(unknown)),
                         "unknown table; expected [sweep], [parameters], [slurm], [[checks]]")
    settings = _table(path, document, "sweep", _SWEEP_KEYS)
    if not isinstance(settings.get("base"), str):
        raise SweepError(path, "sweep.base", "required: the base case file, got "
                         f"{settings.get('base', 'nothing')!r}")
    base = _resolve(path, "sweep.base", settings["base"])
    method = settings.get("method", "grid")
    if method not in METHODS:
        raise SweepError(path, "sweep.method",
                         f"expected one of {', '.join(METHODS)}, got {method!r}")
    samples = settings.get("samples")
    if method != "grid" and (not isinstance(samples, int) or isinstance(samples, bool)
                             or not 1 <= samples <= MAX_CASES):
        raise SweepError(path, "sweep.samples", f"{method} needs a positive integer number "
                         f"of samples up to {MAX_CASES}, got {samples!r}")
    seed, ranks = settings.get("seed", 0), settings.get("ranks", 1)
    for key, value in (("seed", seed), ("ranks", ranks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (key == "ranks"):
            raise SweepError(path, f"sweep.{key}", f"expected an integer, got {value!r}")
    fields = settings.get("fields", False)
    if not isinstance(fields, bool):
        raise SweepError(path, "sweep.fields", f"expected true or false, got {fields!r}")
    specs = _table(path, document, "parameters", None)
    if not specs:
        raise SweepError(path, "parameters", "at least one parameter is needed")
    parameters = [_parameter(path, key, spec, method) for key, spec in specs.items()]
    grid = math.prod(len(p.levels) for p in parameters) if method == "grid" else 0
    if grid > MAX_CASES:
        raise SweepError(path, "parameters", f"a grid of {grid} cases: more than {MAX_CASES}")
    slurm = _slurm(path, document)
    checks = _checks(path, document.get("checks", []))

    from solver.case import load_case

    try:
        base_case = load_case(base)
    except UserError as error:
        raise SweepError(path, "sweep.base", f"the base case is not valid: {error}") from None
    references = settings.get("references", [])
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise SweepError(path, "sweep.references",
                         f"expected a list of case files, got {references!r}")
    sweep = Sweep(file=str(path.resolve()), base=str(base), method=method,
                  samples=samples if method != "grid" else None, seed=seed, ranks=ranks,
                  parameters=[p.key for p in parameters], slurm=slurm, checks=checks,
                  references=[str(_resolve(path, f"sweep.references[{index}]", reference))
                              for index, reference in enumerate(references)],
                  fields=fields)
    sweep.cases = _expand(path, sweep, _as_written_elsewhere(base_case), parameters,
                          Path(out) / "cases")
    for index, reference in enumerate(sweep.references):
        try:
            raw = _as_written_elsewhere(load_case(reference))
        except UserError as error:
            raise SweepError(path, f"sweep.references[{index}]",
                             f"the reference case is not valid: {error}") from None
        sweep.cases += _expand_reference(path, raw, parameters, Path(out) / "cases",
                                         len(sweep.cases), fields)
    return sweep


def _as_written_elsewhere(case) -> dict:
    """The case file's document with the files it names (a mesh file) as absolute paths:
    the sweep writes its cases into another directory."""
    from solver.geometry.registry import geometry_kind

    document = copy.deepcopy(case.raw)
    for key in geometry_kind(case).file_keys:
        document["geometry"][key] = getattr(case.geometry, key)
    return document


def _resolve(path: Path, key: str, name: str) -> Path:
    """A file named in the sweep file, relative to it, as an absolute path."""
    try:
        return (path.parent / name).resolve()
    except (OSError, ValueError) as error:  # a NUL in the name, a loop of links
        raise SweepError(path, key, f"not a usable file name {name!r}: {error}") from None


def _table(path, document, name: str, allowed: set[str] | None) -> dict:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise SweepError(path, name, "expected a table")
    unknown = set(table) - allowed if allowed is not None else set()
    if unknown:
        raise SweepError(path, f"{name}.{sorted(unknown)[0]}",
                         f"unknown key; expected one of {', '.join(sorted(allowed))}")
    return table


def _slurm(path, document) -> dict[str, Any]:
    """[slurm]: sbatch resources, the task's shell set-up lines (module load, conda activate)
    and the launcher the task's Python runs under (a bundle's sinter-env, apptainer exec)."""
    slurm = _table(path, document, "slurm", set(_SLURM_KEYS))
    for key, value in slurm.items():
        kind = _SLURM_KEYS[key]
        if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise SweepError(path, f"slurm.{key}", f"expected a positive integer, got {value!r}")
        if kind is str and (not isinstance(value, str) or not value.strip()):
            raise SweepError(path, f"slurm.{key}", f"expected a non-empty string, got {value!r}")
        if kind is list and (not isinstance(value, list)
                             or not all(isinstance(line, str) for line in value)):
            raise SweepError(path, f"slurm.{key}", f"expected a list of strings, got {value!r}")
    return slurm


def _checks(path, checks) -> list[dict[str, Any]]:
    """[[checks]]: { name, key (a results column), min and/or max } -> SI bounds."""
    if not isinstance(checks, list):
        raise SweepError(path, "checks", "expected an array of tables [[checks]]")
    resolved = []
    for index, check in enumerate(checks):
        where = f"checks[{index}]"
        if not isinstance(check, dict) or set(check) - _CHECK_KEYS \
                or not {"name", "key"} <= set(check) or not {"min", "max"} & set(check):
            raise SweepError(path, where, "expected { name = ..., key = ..., min = ... and/or "
                             "max = ... }")
        bounds = {}
        for bound in ("min", "max"):
            if bound in check:
                value = to_si(check[bound])
                if not isinstance(value, float):
                    raise SweepError(path, f"{where}.{bound}",
                                     f"expected a number or quantity, got {check[bound]!r}")
                bounds[bound] = value
        resolved.append({"name": check["name"], "key": check["key"], **bounds})
    return resolved


def _unit_samples(sweep: Sweep, parameters: list[Parameter]):
    """Points of the unit hypercube, one per case, or None for a grid."""
    if sweep.method == "grid":
        return None
    from scipy.stats import qmc

    dimensions = len(parameters)
    if sweep.method == "lhs":
        return qmc.LatinHypercube(dimensions, rng=sweep.seed).random(sweep.samples)
    with warnings.catch_warnings():
        # Sobol balance properties need a power of 2; other counts are allowed, with a note.
        warnings.simplefilter("ignore", UserWarning)
        points = qmc.Sobol(dimensions, scramble=True, rng=sweep.seed).random(sweep.samples)
    if sweep.samples & (sweep.samples - 1):
        logger.warning("a Sobol sample is balanced for a power of 2 samples; %d is not",
                       sweep.samples)
    return points


def _expand(path, sweep: Sweep, base: dict, parameters: list[Parameter], cases_dir: Path):
    points = _unit_samples(sweep, parameters)
    if points is None:
        combinations = itertools.product(*(p.levels for p in parameters))
    else:
        combinations = ([p.at(u) for p, u in zip(parameters, point, strict=True)]
                        for point in points)
    cases = _concrete_cases(path, base, parameters, combinations, cases_dir, first_index=0,
                            fields=sweep.fields)
    total = math.prod(len(p.levels) for p in parameters) if points is None else len(points)
    if len(cases) < total:
        logger.info("%d of %d combinations are duplicates of others and appear once",
                    total - len(cases), total)
    return cases


def _has_key_path(document: dict, tokens: tuple[str | int, ...]) -> bool:
    container: Any = document
    for token in tokens:
        if isinstance(token, int):
            if not isinstance(container, list) or token >= len(container):
                return False
        elif not isinstance(container, dict) or token not in container:
            return False
        container = container[token]
    return True


def _expand_reference(path, reference: dict, parameters: list[Parameter], cases_dir: Path,
                      first_index: int, fields: bool) -> list[SweepCase]:
    """A reference design (the plain or flat cell beside a recurved sweep) at every value of
    the parameters its case file has (`geometry.height`), not of those it has not
    (`geometry.neck_width`): its metric is drawn against the same axes. A parameter drawn
    from a continuous distribution keeps the reference case's own value."""
    shared = [p for p in parameters
              if p.levels is not None and _has_key_path(reference, p.tokens)]
    cases = _concrete_cases(path, reference, shared,
                            itertools.product(*(p.levels for p in shared)), cases_dir,
                            first_index, fields)
    for case in cases:
        case.reference = reference["case"]["name"]
    return cases


def _concrete_cases(path, base: dict, parameters: list[Parameter], combinations,
                    cases_dir: Path, first_index: int, fields: bool) -> list[SweepCase]:
    """The cases of the combinations of parameter values; without `fields` (the sweep's
    default) each writes no fields, only its tables (output.fields = [])."""
    from solver.case import load_case_text

    base_name = base["case"]["name"]
    cases, seen = [], set()
    for values in combinations:
        document = copy.deepcopy(base)
        if not fields:
            document.setdefault("output", {})["fields"] = []
        for parameter, value in zip(parameters, values, strict=True):
            try:
                set_key_path(document, parameter.tokens, value)
            except ValueError as error:
                raise SweepError(path, f"parameters.{parameter.key}", str(error)) from None
        digest = case_hash(document)
        if digest in seen:
            continue
        seen.add(digest)
        name = f"{base_name}-{digest[:10]}"
        written = dict(zip((p.key for p in parameters), values, strict=True))
        document["case"]["name"] = name
        document["case"]["description"] = f"sweep {Path(path).stem}: " + (", ".join(
            f"{key} = {value}" for key, value in written.items()) or "the base values")
        error = None
        try:
            load_case_text(case_toml(document), file=cases_dir / f"{name}.toml")
        except UserError as invalid:
            error = str(invalid)
        cases.append(SweepCase(index=first_index + len(cases), name=name, hash=digest,
                               values=written,
                               si={key: to_si(value) for key, value in written.items()},
                               error=error, document=document))
    return cases


def case_hash(document: dict) -> str:
    """sha256 of a case's content (parsed TOML), without the keys that only name it."""
    content = copy.deepcopy(document)
    for key in NAMING_KEYS:
        content.get("case", {}).pop(key, None)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=str)  # TOML dates and times as text
    return hashlib.sha256(canonical.encode()).hexdigest()


def case_file_hash(path: Path) -> str | None:
    """The case hash of a case file, or None when it cannot be read."""
    try:
        return case_hash(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def write_sweep(sweep: Sweep, sweep_file: Path, out: Path):
    """Write the plan, the sweep file and the case files into the sweep directory."""
    cases_dir = out / "cases"
    cases_dir.mkdir(parents=True, exist_ok=True)
    for case in sweep.cases:
        (cases_dir / f"{case.name}.toml").write_text(case_toml(case.document),
                                                     encoding="utf-8")
    current = {f"{case.name}.toml" for case in sweep.cases}
    for stale in cases_dir.glob("*.toml"):
        if stale.name not in current:  # from an earlier version of the sweep file
            stale.unlink()
    if sweep_file.resolve() != (out / "sweep.toml").resolve():
        shutil.copyfile(sweep_file, out / "sweep.toml")
    (out / "plan.json").write_text(sweep.to_json())


def read_plan(out: Path) -> Sweep:
    plan = Path(out) / "plan.json"
    if not plan.exists():
        raise UserError(f"{out}: not a sweep directory (no plan.json)")
    return Sweep.from_json(plan.read_text())


# --- TOML writing -------------------------------------------------------------------------

def case_toml(document: dict) -> str:
    """TOML text of a case: tomli_w's where it is installed, else toml_dumps's."""
    try:
        import tomli_w
    except ImportError:
        return toml_dumps(document)
    return tomli_w.dumps(document)
