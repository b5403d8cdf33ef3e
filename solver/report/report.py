"""`sinter report RUN_DIR`: one self-contained HTML page of a result, RUN_DIR/report.html.

Self-contained: the pictures are inlined as base64 data URIs and the style is in the page,
so the file can be mailed or archived alone and opens without a network.
"""

import base64
import io
import json
import logging
import tomllib
from datetime import datetime
from html import escape
from pathlib import Path

from solver.errors import UserError
from solver.io.units import unit_of
from solver.report.units import (
    display_unit,
    format_convergence_limit,
    format_location,
    format_quantity,
    quantity_label,
)
from solver.report.views import (
    MPA,
    interface_figure,
    missing_view_fields,
    result_directory,
)

logger = logging.getLogger(__name__)

KELVIN_AT_0_DEGC = 273.15
HOUR = 3600.0
NANOMETRE = 1e-9

# The pictures `sinter view` draws, in the order shown, with their captions. Its interface
# traction plot is not among them: the page draws the same from interface.csv itself.
VIEW_PICTURES = {
    "von_mises.png": "von Mises stress at the end of the schedule on the undeformed shape "
                     "(the cell values averaged to the nodes within each material), with "
                     "the outline of each material",
    "closeup.png": "the same, close to the interface",
}

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.2em; }
.subtitle { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f0f0f0; }
.pass { color: #176f2c; font-weight: bold; }
.fail { color: #fff; background: #c0392b; font-weight: bold; }
figure { margin: 0.5em 0 1.5em; }
figure img { max-width: 100%; max-height: 1000px; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; }
.note { color: #555; font-style: italic; }
.na { color: #777; }
.warning { background: #fff4d6; border: 1px solid #e0b040; padding: 0.5em 0.8em; }
"""


def write_report(run_dir) -> Path:
    """Write RUN_DIR/report.html from the files of a finished run; returns its path."""
    run_dir = result_directory(run_dir)
    if "pulloff" in json.loads((run_dir / "summary.json").read_text()):
        raise UserError(f"{run_dir}: a pull-off result; the report is of a `sinter run` result. "
                        "The pull-off's curve is pulloff.png, its numbers summary.json "
                        "(docs/pulloff.md)")
    path = run_dir / "report.html"
    path.write_text(report_page(run_dir), encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def report_page(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    case_text = (run_dir / "case.toml").read_text() if (run_dir / "case.toml").exists() else ""
    description = tomllib.loads(case_text).get("case", {}).get("description", "")
    finished = summary.get("timestamp") or datetime.fromtimestamp(
        (run_dir / "summary.json").stat().st_mtime).isoformat(timespec="seconds")
    commit = summary.get("git_commit")
    sections = [
        f"<h1>{escape(summary['case'])}</h1>",
        f'<p class="subtitle">{escape(description)}</p>' if description else "",
        f'<p class="subtitle">{escape(str(run_dir))}, finished {escape(finished)}; '
        f"sinterfem {escape(summary['sinterfem_version'])}"
        + (f" (commit {escape(commit[:12])})" if commit else "")
        + f", DOLFINx {escape(summary['dolfinx_version'])}, on {escape(summary['host'])}</p>",
        _warnings(summary.get("warnings") or []),
        "<h2>Verdict</h2>", _verdict_table(summary),
        "<h2>Summary</h2>", _summary_table(summary),
        "<h2>Interfaces</h2>", _interface_table(summary["interfaces"]),
        _interface_profiles(run_dir, summary),
    ]
    if summary.get("convergence"):
        sections += ["<h2>Discretization error</h2>",
                     _convergence_table(summary["convergence"])]
    sections += [
        "<h2>Pictures</h2>", _view_pictures(run_dir),
    ]
    if summary.get("furnace"):
        sections += ["<h2>Furnace</h2>", _furnace_table(summary["furnace"])]
    if (run_dir / "kinetics.png").exists():
        sections += ["<h2>Kinetics along the schedule</h2>",
                     _figure((run_dir / "kinetics.png").read_bytes(),
                             "binder remaining, crystallized fraction, degree of cure and "
                             "relative density along the schedule (kinetics.csv)")]
    sections += ["<h2>Inputs: case.toml</h2>",
                 f"<pre>{escape(case_text, quote=False)}</pre>" if case_text
                 else '<p class="note">case.toml is missing from this result.</p>']
    body = "\n".join(section for section in sections if section)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{escape(summary['case'])}: sinterfem report</title>\n"
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def _warnings(warnings: list[str]) -> str:
    """The run's warnings (placeholder data it used, materials above their flow stress),
    before anything else; '' if none."""
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(message)}</li>" for message in warnings)
    return f'<div class="warning"><strong>Warnings</strong><ul>{items}</ul></div>'


def _summary_table(summary: dict) -> str:
    schedule, final = summary["schedule"], summary["final"]
    rows = [
        ("temperature", f"{_degc(schedule['start_temperature'])} to "
                        f"{_degc(schedule['end_temperature'])}, {escape(schedule['atmosphere'])}"),
        ("duration of the schedule", f"{schedule['duration']:.6g} s "
                                     f"({schedule['duration'] / HOUR:.3g} h)"),
        ("time steps (cuts), Newton iterations",
         f"{schedule['time_steps']} ({schedule['step_cuts']}), {schedule['newton_iterations']}"),
        *((f"max von Mises stress at the end, {escape(name)} (stress field)",
           f"{found['max'] / MPA:.1f} MPa at {format_location(found['at'])}")
          for name, found in (final.get("von_mises_by_material") or {}).items()),
        ("max von Mises stress at the end, largest cell average",
         f"{final['max_von_mises'] / MPA:.1f} MPa"),
        ("out-of-plane strain at the end", f"{final['out_of_plane_strain']:.4g} (strain)"),
        ("free-face displacement at the end",
         f"{final['face_displacement'] / NANOMETRE:.4g} nm"),
    ]
    rows += [(key.replace("_", " "), f"{value:.4g} 1/m")
             for key, value in (summary.get("bending") or {}).items()]
    rows += [(f"geometry: {key.replace('_', ' ')}", _geometry_value(key, value))
             for key, value in summary["geometry"].items()]
    rows += [("materials", ", ".join(f"{escape(name)} (tag {tag})"
                                      for tag, name in summary["materials"].items())),
             ("DOFs, cells, ranks", f"{summary['dofs']}, {summary['cells']}, {summary['ranks']}"),
             ("wall time", f"{summary['wall_time']:.1f} s")]
    return _table(["quantity", "value"], rows)


def _geometry_value(key: str, value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return escape(value)
    unit = unit_of(f"geometry.{key}")
    return format_quantity(value, unit) if unit else f"{value:.4g}"


VERDICT_CELLS = {"pass": '<span class="pass">pass</span>',
                 "fail": '<span class="fail">FAIL</span>',
                 "n/a": '<span class="na">n/a (does not apply)</span>'}


def _verdict_table(summary: dict) -> str:
    """Every condition (the process window's, and no delamination at each interface) with
    its value and limit in units, and the verdict over those that apply."""
    conditions = [*(summary.get("process_window") or []), *(summary.get("delamination") or [])]
    if not conditions:
        return '<p class="note">No conditions in this result.</p>'
    rows = [(escape(row["condition"]), escape(format_quantity(row["value"], row["unit"])),
             escape(format_quantity(row["limit"], row["unit"])), VERDICT_CELLS[row["verdict"]])
            for row in conditions]
    failed = [row["condition"] for row in conditions if row["verdict"] == "fail"]
    applying = sum(row["verdict"] != "n/a" for row in conditions)
    not_applying = len(conditions) - applying
    others = f" ({not_applying} do not apply to this case)" if not_applying else ""
    headline = (f'<p class="pass">All {applying} conditions that apply pass{others}.</p>'
                if not failed else
                f'<p><span class="fail">{len(failed)} of {applying} conditions FAIL: '
                f'{escape("; ".join(failed))}.</span>{others}</p>')
    return headline + _table(["condition", "value", "limit", "verdict"], rows)


def _interface_table(interfaces: dict) -> str:
    if not interfaces:
        return '<p class="note">This geometry has no interface.</p>'
    rows = []
    for name, data in interfaces.items():
        peak = data.get("peak_over_history", {}).get("max_risk")
        rows.append((
            escape(name), escape(" / ".join(data["materials"])),
            _raw_and_averaged(data, "max_normal_traction"),
            _raw_and_averaged(data, "max_shear_traction"),
            f"{data['max_risk']:.3g}", f"{100 * data['critical_fraction']:.1f} %",
            f"{peak['value']:.3g} at {peak['time']:.6g} s, {_degc(peak['temperature'])}"
            if peak else "",
        ))
    return _table(["interface", "materials (foil / layer)",
                   "max normal traction [MPa] (averaged)", "max shear traction [MPa] (averaged)",
                   "max risk", "share of interface at risk >= 1",
                   "peak risk over the schedule"], rows)


def _convergence_table(convergence: dict) -> str:
    """`sinter run --convergence`: each headline number on the case's mesh and the refined
    ones, the ratio of successive differences, the Richardson limit +- its error estimate
    and the case's own value from the limit (docs/outputs.md, "Discretization error")."""
    meshes = convergence["meshes"]
    intro = (f"<p>The schedule solved again with {escape(convergence['refined'])} halved "
             f"{len(meshes) - 1} time(s): "
             + ", ".join(f"{mesh['fine_mesh_size'] * 1e6:.3g} um ({mesh['dofs']} DOFs, "
                         f"{mesh['wall_time']:.1f} s)" for mesh in meshes)
             + ". The limit is Richardson's extrapolation with the observed ratio; a number "
               "whose differences do not shrink has none.</p>")
    rows = []
    for row in convergence["quantities"]:
        shown = display_unit(row["unit"])
        where, what = quantity_label(row["quantity"])
        rows.append([escape(f"{what}, {where}" + (f" [{shown}]" if shown else ""))]
                    + [escape(cell) for cell in format_convergence_limit(row)])
    header = (["quantity"] + [f"{mesh['fine_mesh_size'] * 1e6:.3g} um" for mesh in meshes]
              + ["ratio", "limit", "case's mesh from the limit"])
    return intro + _table(header, rows)


def _raw_and_averaged(data: dict, key: str) -> str:
    return f"{data[key] / MPA:.2f} ({data[f'{key}_averaged'] / MPA:.2f})"


def _interface_profiles(run_dir: Path, summary: dict) -> str:
    if not (run_dir / "interface.csv").exists() or not summary["interfaces"]:
        return ""
    figure = interface_figure(run_dir / "interface.csv", summary)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return _figure(buffer.getvalue(),
                   "tractions on the interface facets (thin) and averaged over the averaging "
                   "length (thick), and the risk index, along each interface (interface.csv)")


def _view_pictures(run_dir: Path) -> str:
    pictures = [(run_dir / "views" / name, caption) for name, caption in VIEW_PICTURES.items()]
    present = [(path, caption) for path, caption in pictures if path.exists()]
    missing = missing_view_fields(run_dir)
    if not present and missing is not None:
        return f'<p class="note">No pictures of the fields: {escape(missing)}.</p>'
    if not present:
        return (f'<p class="note">No pictures yet: <code>sinter view {escape(str(run_dir))}'
                "</code> draws them with ParaView, then run <code>sinter report</code> again.</p>")
    return "\n".join(_figure(path.read_bytes(), f"{caption} (views/{path.name})")
                     for path, caption in present)


def _furnace_table(furnace: dict) -> str:
    rows = [(escape(name), _degc(data["final_temperature"]), f"{data['max_lag']:.1f}",
             f"{data['max_cooling_lag']:.1f}")
            for name, data in furnace["positions"].items()]
    return (f"<p>The unit cell follows <b>{escape(str(furnace['follow']))}</b>; the largest "
            f"spread between the positions is {furnace['max_spread']:.1f} K.</p>"
            + _table(["position", "final temperature", "max lag behind the furnace [K]",
                      "max lag while cooling [K]"], rows))


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(header: list, rows: list) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for title in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="number">{cell}</td>' if _looks_numeric(cell) else f"<td>{cell}</td>"
            for cell in row) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _looks_numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] == "-")


def _degc(kelvin: float) -> str:
    return f"{kelvin - KELVIN_AT_0_DEGC:.1f} degC"
