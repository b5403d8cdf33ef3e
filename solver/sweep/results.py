"""The results table of a sweep: one row per case, from its summary.json and status record."""

from __future__ import annotations

import json
import logging
import math
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pandas as pd

from solver.errors import OutputError, write_reason
from solver.io import units as unit_endings
from solver.sweep.backends import incomplete_reason, is_complete, read_status, run_dir
from solver.sweep.plan import Sweep, SweepCase, read_plan, si_and_written_units

logger = logging.getLogger(__name__)

PROVENANCE = ("case_hash", "sinterfem_version", "git_commit", "dolfinx_version", "host",
              "ranks", "wall_time", "backend", "slurm_job")
# summary.json keys that are provenance or bookkeeping rather than metrics
_NOT_METRICS = {"case", "case_file", "materials", "outputs", "wall_time", "sinterfem_version",
                "dolfinx_version", "host", "ranks", "git_commit", "timestamp", "units",
                "warnings"}


def flatten(data: dict, prefix: str = "", units: dict | None = None) -> dict:
    """{'interfaces': {'i': {'max_risk': 1}}} -> {'interfaces.i.max_risk': 1}. A list of
    conditions (process_window, delamination) becomes <list>.<condition>.value and .pass
    (the condition's words before any parenthesis; pass empty where it does not apply);
    other lists are dropped. `units`, if given, gets the unit of each condition's value."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}.", units))
        elif isinstance(value, list):
            for row in value:
                if isinstance(row, dict) and "condition" in row:
                    slug = re.sub(r"\W+", "_", row["condition"].split("(")[0].strip()).lower()
                    flat[f"{name}.{slug}.value"] = row.get("value")
                    flat[f"{name}.{slug}.pass"] = row.get("pass")
                    if units is not None:
                        units[f"{name}.{slug}.value"] = row.get("unit")
        else:
            flat[name] = value
    return flat


def metric_units(summary: dict) -> dict:
    """{column: SI unit} of a summary's metrics: a condition's value in its row's unit,
    every other number by summary.json's `units` (the first pattern that matches)."""
    conditions = {}
    flat = flatten(summary, units=conditions)
    patterns = summary.get("units", {})
    found = {}
    for key in flat:
        if key in conditions:
            found[key] = conditions[key]
            continue
        found[key] = next((unit for pattern, unit in patterns.items()
                           if fnmatchcase(key, pattern)), None)
    return found


def parameter_units(sweep: Sweep) -> dict:
    """{parameter: (SI unit of its column, the unit the sweep file wrote it in)}; a
    parameter written without a unit (a number or a name) has neither."""
    found = {}
    for parameter in sweep.parameters:
        written = next((case.values[parameter] for case in sweep.cases
                        if parameter in case.values), None)
        found[parameter] = si_and_written_units(written)
    return found


def _peaks(history: Path) -> dict:
    """Largest von Mises stress and risk over the whole schedule (summary.json has the final
    state only; a process schedule peaks at its hold, not at its end)."""
    try:
        table = pd.read_csv(history)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}
    peaks = {"peak.max_von_mises": float(table["max_von_mises_Pa"].max())}
    for column in table.columns:
        if column.startswith("max_risk:"):
            name = column.removeprefix("max_risk:")
            peaks[f"peak.interfaces.{name}.max_risk"] = float(table[column].max())
    return peaks


def case_row(out: Path, sweep: Sweep, case: SweepCase) -> tuple[dict, dict, dict]:
    """(head, metrics, provenance) columns of one case."""
    record = read_status(out, case) or {}
    head = {"index": case.index, "name": case.name, "status": "pending", "error": None,
            "reference": case.reference, **case.si}
    metrics: dict = {}
    provenance = {"case_hash": case.hash, **{key: record.get(key) for key in PROVENANCE[1:]}}
    if is_complete(out, case):
        summary = json.loads((run_dir(out, case) / "summary.json").read_text())
        head["status"] = "ok"
        metrics = {key: value for key, value in flatten(summary).items()
                   if key.split(".")[0] not in _NOT_METRICS}
        metrics.update(_peaks(run_dir(out, case) / "history.csv"))
        provenance.update({key: summary[key] for key in
                           ("sinterfem_version", "dolfinx_version", "host", "ranks")})
        if record.get("status") != "ok":  # completed, but its record was not written
            provenance["wall_time"] = summary["wall_time"]
    elif (stopped := incomplete_reason(out, case)) is not None:
        head["status"], head["error"] = "incomplete", stopped  # a rerun resumes it
    elif case.error is not None or record.get("status") == "failed":
        head["status"] = "failed"
        head["error"] = case.error or record.get("error")
    return head, metrics, provenance


# the units of the columns that come from neither the plan nor a summary
OTHER_UNITS = {"peak.max_von_mises": "Pa", "wall_time": "s"}


def collect(out: Path) -> pd.DataFrame:
    """Build results.csv (and results.parquet where pyarrow is present) in the sweep dir.

    The table returned is named by key paths (`final.max_von_mises`), with the SI unit of
    each column in table.attrs["units"] and the unit a parameter was written in in
    table.attrs["written_units"]; the files' headers add the unit ending of every column with
    a dimension (`final.max_von_mises_Pa`, solver/io/units.py)."""
    out = Path(out)
    sweep = read_plan(out)
    rows = [case_row(out, sweep, case) for case in sweep.cases]
    columns = list(dict.fromkeys(key for head, _, _ in rows for key in head))
    columns += list(dict.fromkeys(key for _, metrics, _ in rows for key in metrics))
    table = pd.DataFrame([{**head, **metrics, **provenance} for head, metrics, provenance in rows],
                         columns=[*columns, *PROVENANCE])
    parameters = parameter_units(sweep)
    units = {**OTHER_UNITS, **{key: si for key, (si, _) in parameters.items()}}
    for case in sweep.cases:
        if is_complete(out, case):
            summary = json.loads((run_dir(out, case) / "summary.json").read_text())
            for key, unit in metric_units(summary).items():
                units.setdefault(key, unit)
    units.update({key: "1" for key in table.columns
                  if key.startswith("peak.") and key.endswith(".max_risk")})
    headers = {key: unit_endings.column(key, units.get(key)) for key in table.columns}
    table = apply_checks(table, sweep.checks, {header: key for key, header in headers.items()})
    table.attrs["units"] = {key: unit for key, unit in units.items() if unit}
    table.attrs["written_units"] = {key: written for key, (_, written) in parameters.items()
                                    if written}
    written = table.rename(columns=headers)
    written.attrs = {}
    _write_whole(out / "results.csv", lambda path: written.to_csv(path, index=False))
    try:
        _write_whole(out / "results.parquet",
                     lambda path: written.to_parquet(path, index=False))
    except ImportError:
        logger.debug("no pyarrow: results.csv only")
    return table


def _write_whole(path: Path, write):
    """`write(a temporary path)`, then renamed to `path`: a table is there whole or as it
    was before. A failed write (a full disk) is an OutputError naming the table."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OutputError(path, write_reason(error),
                          "the sweep's table is left as it was") from error
    finally:
        partial.unlink(missing_ok=True)


def apply_checks(table: pd.DataFrame, checks: list[dict],
                 headers: dict | None = None) -> pd.DataFrame:
    """A column check.NAME per [[checks]] entry (True: within the bounds; empty: unknown),
    and checks_passed when there are any. A check's key is a column's key path, or its
    header in results.csv (`headers`: {header: key path})."""
    if not checks:
        return table
    names = []
    for check in checks:
        name = f"check.{check['name']}"
        names.append(name)
        check = {**check, "key": (headers or {}).get(check["key"], check["key"])}
        if check["key"] not in table.columns:
            logger.warning("check %s: no column %s in the results", check["name"], check["key"])
            table[name] = None
            continue

        def passes(value, check=check):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            return bool(check.get("min", -math.inf) <= value <= check.get("max", math.inf))

        table[name] = table[check["key"]].map(passes).astype(object)
    table["checks_passed"] = [None if any(row[n] is None for n in names)
                              else all(row[n] for n in names) for _, row in table.iterrows()]
    return table
