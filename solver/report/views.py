"""`sinter view RUN_DIR`: the standard pictures of a result, drawn by ParaView, and a state file.

ParaView's Python is not the solver's: the pictures are drawn by
`pvscripts/render_views.py`, run by `pvbatch` in a subprocess (under `xvfb-run` when there
is no display, since Debian's ParaView renders only into an X window). The interface
tractions are a line plot, drawn here with matplotlib from interface.csv.
"""

import json
import logging
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from solver.errors import UserError
from solver.io import units
from solver.stopping import INCOMPLETE_FILE, incomplete_message

logger = logging.getLogger(__name__)

PVSCRIPTS = Path(__file__).parent / "pvscripts"
XVFB_SCREEN = "-screen 0 1600x1200x24"
PVBATCH_TIMEOUT = 300  # s; a 2D cell renders in a few seconds
MPA = 1e6
MICROMETRE = 1e-6


def result_directory(run_dir) -> Path:
    """The absolute path of a complete result (it has summary.json), or a UserError."""
    path = Path(run_dir).absolute()
    if not (path / "summary.json").is_file() and (path / INCOMPLETE_FILE).is_file():
        raise UserError(incomplete_message(run_dir, path / INCOMPLETE_FILE))
    if not (path / "summary.json").is_file():
        raise UserError(f"{run_dir}: not a sinterfem result (no summary.json); "
                        "give the --out directory of a finished `sinter run`")
    return path


X_SERVER_ATTEMPTS = 3


def pvbatch_command(script, *args) -> list[str]:
    """The command that runs `script` with ParaView's pvbatch, under Xvfb without a display."""
    pvbatch = shutil.which("pvbatch")
    if pvbatch is None:
        raise UserError("ParaView's pvbatch is not on the PATH; install ParaView "
                        "(Debian: apt install paraview) to draw views")
    command = [pvbatch, str(script), *map(str, args)]
    if os.environ.get("DISPLAY"):
        return command
    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        raise UserError("no DISPLAY and no xvfb-run: ParaView needs an X server to render "
                        "(Debian: apt install xvfb xauth)")
    return [xvfb_run, "-a", "-s", XVFB_SCREEN, *command]


def run_pvbatch(script, *args, cwd=None) -> str:
    """Run a pvbatch script (in the directory `cwd`, default this one); its standard output,
    or a UserError with the last message."""
    command = pvbatch_command(script, *args)
    for attempt in range(X_SERVER_ATTEMPTS):
        logger.debug("running %s", " ".join(command))
        try:
            result = subprocess.run(command, capture_output=True, text=True,
                                    timeout=PVBATCH_TIMEOUT, cwd=cwd)
        except subprocess.TimeoutExpired as timeout:
            raise UserError(f"pvbatch {Path(script).name} did not finish in "
                            f"{PVBATCH_TIMEOUT} s") from timeout
        # A freshly started Xvfb occasionally refuses ParaView's first window (seen once in
        # CI: vtkXOpenGLRenderWindow::CreateAWindow aborts); a new server then works.
        if not (result.returncode != 0 and "CreateAWindow" in result.stderr):
            break
        logger.info("pvbatch could not open a window on the X server (attempt %d); retrying",
                    attempt + 1)
    if result.stderr.strip():
        logger.debug("pvbatch %s said:\n%s", Path(script).name, result.stderr.rstrip())
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"pvbatch {Path(script).name} failed (exit {result.returncode}): {last}")
    return result.stdout


def write_tags_xdmf(fields_xdmf, path) -> Path:
    """An XDMF file with only the mesh and its tag sets (`materials`, `boundaries`).

    ParaView's XDMF3 readers leave the time-independent grids out of a file that holds time
    series, so the tags in fields.xdmf never reach ParaView. This file holds the same grids
    without the time series and points into the same fields.h5, by a relative path so that
    the result directory can move.
    """
    fields_xdmf, path = Path(fields_xdmf).absolute(), Path(path).absolute()
    tree = ET.parse(fields_xdmf)
    domain = tree.getroot().find("Domain")
    for grid in domain.findall("Grid"):
        if grid.get("GridType") == "Collection":
            domain.remove(grid)
    for item in domain.iter("DataItem"):
        if item.get("Format") == "HDF":
            h5_name, dataset = item.text.strip().split(":", 1)
            h5_path = fields_xdmf.parent / h5_name
            item.text = f"{os.path.relpath(h5_path, path.parent)}:{dataset}"
    ET.register_namespace("xi", _xinclude_namespace(fields_xdmf))
    tree.write(path, xml_declaration=True, encoding="utf-8")
    return path


def _xinclude_namespace(xdmf) -> str:
    # DOLFINx writes XInclude as https://www.w3.org/2001/XInclude; keep whatever it wrote.
    for _, (prefix, uri) in ET.iterparse(xdmf, events=["start-ns"]):
        if prefix == "xi":
            return uri
    return "http://www.w3.org/2001/XInclude"


def closeup_box(interface_csv) -> dict:
    """Where to look closely, from the interface facets (m): their bounding box, and the
    midpoint of the facet with the highest risk (for an interface that is a straight line,
    whose box is flat)."""
    import pandas as pd

    frame = pd.read_csv(interface_csv)
    points = frame[["x_m", "y_m", "z_m"]].to_numpy()
    worst = frame["risk"].fillna(0.0).to_numpy().argmax()
    return {"lower": points.min(axis=0).tolist(), "upper": points.max(axis=0).tolist(),
            "highest_risk": points[worst].tolist()}


# The fields of fields.xdmf the ParaView pictures need (by their names there), and the
# names [output] gives them.
VIEW_FIELDS = {"von_mises": "von_mises"}


def missing_view_fields(run_dir: Path) -> str | None:
    """Why the ParaView pictures of a result cannot be drawn (a run that wrote fewer fields,
    docs/outputs.md), or None when fields.xdmf has what they need."""
    fields = run_dir / "fields.xdmf"
    if not fields.exists():
        return ("it wrote no fields.xdmf (its [output] has fields = [] or no \"xdmf\" in "
                "formats)")
    written = {grid.get("Name") for grid in ET.parse(fields).getroot().iter("Grid")
               if grid.get("GridType") == "Collection"}
    missing = [name for name in VIEW_FIELDS if name not in written]
    if missing:
        return ("its fields.xdmf has no " + " and no ".join(missing) + " (add "
                + ", ".join(f'"{VIEW_FIELDS[name]}"' for name in missing)
                + " to [output] fields)")
    return None


def render_views(run_dir) -> list[Path]:
    """Draw the pictures of a result into RUN_DIR/views/; returns the files written. The
    ParaView pictures and state need the von Mises field in fields.xdmf:
    without them, only the interface tractions are drawn, and the log says why."""
    run_dir = result_directory(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    views = run_dir / "views"
    views.mkdir(exist_ok=True)
    if "pulloff" in summary:
        return _pulloff_views(run_dir, summary, views)
    files = []
    missing = missing_view_fields(run_dir)
    if missing is None:
        files += _paraview_views(run_dir, summary, views)
    else:
        logger.warning("%s: no ParaView pictures of this result: %s", run_dir, missing)
    if (run_dir / "interface.csv").exists() and summary["interfaces"]:
        figure = interface_figure(run_dir / "interface.csv", summary)
        figure.savefig(views / "interface_tractions.png", dpi=110)
        files.append(views / "interface_tractions.png")
    logger.info("views of %s written to %s: %s", summary["case"], views,
                ", ".join(f.name for f in files) or "none")
    return files


def _pulloff_views(run_dir: Path, summary: dict, views: Path) -> list[Path]:
    """A pull-off result has no fields (docs/outputs.md): its picture is the interface
    from interface_damage.csv; its curve is pulloff.png, drawn by the run."""
    figure = interface_damage_figure(run_dir, summary["case"])
    figure.savefig(views / "interface_damage.png", dpi=110)
    files = [views / "interface_damage.png"]
    logger.info("views of the pull-off %s written to %s: %s (the force-displacement curve "
                "is %s)", summary["case"], views, ", ".join(f.name for f in files),
                run_dir / "pulloff.png")
    return files


def interface_damage_figure(run_dir: Path, case: str):
    """The interface nodes where they are in the geometry (x, y; seen from above in 3D):
    above, the load at which each debonded (its damage reached FULLY_DAMAGED: the
    pull-off displacement, or the state of charge of a swelling pull-off), grey where it
    held to the end; below, the normal traction at the peak force (at the end of a swelling
    pull-off), on a diverging colour map centred at 0."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import CenteredNorm
    from matplotlib.figure import Figure

    from solver.stages.pulloff import FULLY_DAMAGED

    frame = pd.read_csv(run_dir / "interface_damage.csv")
    # the columns' names carry their units (solver/io/units.py)
    dim = 3 if units.header(["z"])[0] in frame.columns else 2
    displacement, force, normal_traction, x_column, y_column = units.header(
        ["displacement", "force", "normal_traction", "x", "y"], dim)
    records = frame["record"].nunique()
    # every record lists the same nodes in the same order (sorted by their coordinates)
    nodes = frame[frame["record"] == frame["record"].min()]
    damage = frame["damage"].to_numpy().reshape(records, -1)
    pulled = displacement in frame.columns
    load = frame[displacement if pulled else "soc"].to_numpy().reshape(records, -1)[:, 0]
    debonded = damage >= FULLY_DAMAGED
    first = np.where(debonded.any(axis=0), load[debonded.argmax(axis=0)], np.nan)
    peak = records - 1
    if pulled:
        curve = pd.read_csv(run_dir / "pulloff.csv")
        at_peak = curve[displacement].iloc[int(curve[force].to_numpy().argmax())]
        peak = int(np.abs(load - at_peak).argmin())
    traction = frame[normal_traction].to_numpy().reshape(records, -1)[peak] / MPA

    figure = Figure(figsize=(8, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    front_axes, traction_axes = figure.subplots(2, 1, sharex=True, sharey=True)
    x, y = nodes[x_column].to_numpy() / MICROMETRE, nodes[y_column].to_numpy() / MICROMETRE
    held = np.isnan(first)
    front_axes.scatter(x[held], y[held], color="0.75", s=14, label="bonded at the end")
    scale, unit = (MICROMETRE, "um") if pulled else (1.0, "")
    front = front_axes.scatter(x[~held], y[~held], c=first[~held] / scale, cmap="viridis",
                               vmin=load[0] / scale, vmax=load[-1] / scale, s=14)
    figure.colorbar(front, ax=front_axes, label=("pull-off displacement [um]" if pulled
                                                 else "state of charge"))
    front_axes.set_title(f"where the interface debonded, and at which "
                         f"{'displacement' if pulled else 'state of charge'}")
    if held.any():
        front_axes.legend(loc="upper right", fontsize="small")
    shown = traction_axes.scatter(x, y, c=traction, cmap="RdBu_r", norm=CenteredNorm(0.0),
                                  s=14)
    figure.colorbar(shown, ax=traction_axes, label="normal traction [MPa]\n(tension > 0)")
    traction_axes.set_title(
        f"normal traction at the peak force ({load[peak] / scale:.3g} {unit})" if pulled
        else f"normal traction at the end (state of charge {load[peak]:.3g})")
    flat = np.ptp(y) < 0.05 * np.ptp(x)  # a straight interface: its shape to scale is a line
    for axes in (front_axes, traction_axes):
        if flat:  # a band around it, as a line in the plane, not its rounding noise
            axes.set_ylim(y.mean() - 0.1 * np.ptp(x), y.mean() + 0.1 * np.ptp(x))
        else:
            axes.set_aspect("equal")
        axes.set_ylabel("y [um]")
        axes.grid(True, alpha=0.3)
    traction_axes.set_xlabel("x [um]")
    figure.suptitle(f"{case}: the foil/layer interface in the pull-off")
    return figure


def _paraview_views(run_dir: Path, summary: dict, views: Path) -> list[Path]:
    """von_mises.png, closeup.png and fields.pvsm, drawn by pvbatch, and tags.xdmf."""
    from solver.geometry.registry import kind_named

    tags = write_tags_xdmf(run_dir / "fields.xdmf", views / "tags.xdmf")
    parameters = {
        "fields": str(run_dir / "fields.xdmf"),
        "tags": str(tags),
        "out": str(views),
        "case": summary["case"],
        "closeup_subject": kind_named(summary["geometry"]["kind"]).closeup,
        "materials": summary["materials"],
        "final_temperature": summary["final"]["temperature"],
        "closeup": closeup_box(run_dir / "interface.csv"),
    }
    written = json.loads(run_pvbatch(PVSCRIPTS / "render_views.py",
                                     json.dumps(parameters)).strip().splitlines()[-1])
    relative_state_paths(views / "fields.pvsm", run_dir)
    return [tags, *map(Path, written)]


def relative_state_paths(state: Path, run_dir: Path):
    """The state file names its files relative to the run directory (./fields.xdmf,
    ./views/tags.xdmf), so that the result can move: ParaView opens them from the run
    directory (`cd RUN_DIR && paraview --state=views/fields.pvsm`, docs/outputs.md). The
    "./" is needed: ParaView's XDMF3 reader finds fields.h5 beside a file name only where
    the name has a directory part."""
    tree = ET.parse(state)
    prefix = f"{run_dir}{os.sep}"
    for element in tree.getroot().iter("Element"):
        value = element.get("value", "")
        if value.startswith(prefix):
            element.set("value", f".{os.sep}{value.removeprefix(prefix)}")
    tree.write(state, xml_declaration=True, encoding="utf-8")


def interface_figure(interface_csv, summary: dict):
    """Tractions (raw and averaged) and the risk index along each interface chain: lines
    along the arc length in 2D, dots over x in 3D (where the facets have no order)."""
    # The object-oriented API with an explicit Agg canvas: no pyplot, no global backend.
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frame = pd.read_csv(interface_csv)
    along_curves = bool(frame["arc_length_m"].notna().all())
    style = {} if along_curves else {"linestyle": "none", "marker": ".", "markersize": 3}
    figure = Figure(figsize=(8, 7), layout="constrained")
    FigureCanvasAgg(figure)
    normal_axes, shear_axes, risk_axes = figure.subplots(3, 1, sharex=True)
    for (name, chain), facets in frame.groupby(["interface", "chain"], sort=False):
        label = name if frame["chain"].nunique() == 1 else f"{name}, piece {chain}"
        along = (facets["arc_length_m"] if along_curves else facets["x_m"]).to_numpy() \
            / MICROMETRE
        for axes, column in ((normal_axes, "normal_traction"), (shear_axes, "shear_traction")):
            raw = axes.plot(along, facets[f"{column}_Pa"] / MPA, linewidth=0.8, alpha=0.5,
                            label=f"{label}, facet", **style)
            axes.plot(along, facets[f"{column}_averaged_Pa"] / MPA, color=raw[0].get_color(),
                      linewidth=1.8, label=f"{label}, averaged", **style)
        risk_axes.plot(along, facets["risk"], linewidth=1.8, label=label, **style)
    normal_axes.set_ylabel("normal traction [MPa]\n(tension > 0)")
    shear_axes.set_ylabel("shear traction [MPa]" if along_curves
                          else "shear traction [MPa]\n(magnitude)")
    risk_axes.set_ylabel("risk index")
    risk_axes.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="risk = 1")
    risk_axes.set_ylim(bottom=0.0, top=max(1.1, float(np.nanmax(frame["risk"])) * 1.05))
    risk_axes.set_xlabel("arc length along the interface [um]" if along_curves else "x [um]")
    for axes in (normal_axes, shear_axes, risk_axes):
        axes.grid(True, alpha=0.3)
        axes.legend(loc="best", fontsize="small")
    lengths = sorted({data["averaging_length"] for data in summary["interfaces"].values()})
    averaging = ", ".join(f"{length / MICROMETRE:g} um" for length in lengths)
    figure.suptitle(f"{summary['case']}: interface tractions at the end of the schedule"
                    + (f" (averaged over {averaging})" if averaging else ""))
    return figure
