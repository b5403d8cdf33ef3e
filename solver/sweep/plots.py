"""Design maps from a sweep's results.csv, written as PNG (matplotlib, Agg backend).

- one varied parameter: each metric against it (line plot)
- two: a heat map per metric (a grid; a triangulated contour for scattered samples)
- three or more: parallel coordinates per metric
- two or more: a sensitivity ranking per metric. For a Sobol sample, first-order Sobol
  indices estimated by binning (Var(E[Y | X_i]) / Var(Y), E[Y | X_i] as the mean in
  equal-count bins of X_i; biased upwards by noise for small samples); otherwise standardized
  regression coefficients (a linear model of the z-scores, with its R^2 on the chart).
Values are shown in the units the sweep file wrote its parameters in (um, degC, h) and the
metrics in MPa, um, degC (the table's attrs "units" and "written_units", results.collect);
the risk index's limit 1 (delamination predicted) is drawn on its plots. Cases outside a
[[checks]] bound are marked with a red cross. Reference designs (the sweep
file's `references`, e.g. the plain cell beside a recurved sweep) are drawn with the sample:
as a dashed line against the parameter they share, a horizontal line where they share none
(line plots), as marks on the colour bar of a heat map, which then has a line plot beside it
(one line per value of the other parameter, with the references); they take no part in the
sensitivity ranking.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402

logger = logging.getLogger(__name__)

DELAMINATION = "risk 1: delamination predicted"


def shown_units(table: pd.DataFrame, units: dict, written: dict):
    """The table in the units it is shown in, and each column's axis label: a parameter in
    the unit the sweep file wrote it in, a metric in MPa, um, degC (solver/report/units.py);
    a column without a unit keeps its values and its name."""
    from solver.case.units import ureg
    from solver.report.units import display_unit

    table, labels = table.copy(), {}
    for name, si in units.items():
        if name not in table.columns or not pd.api.types.is_numeric_dtype(table[name]) \
                or si in ("", "1"):
            continue
        shown = written.get(name) or display_unit(si)
        if shown != si:
            values = table[name].to_numpy(dtype=float)
            table[name] = ureg.Quantity(values, ureg.parse_units(si)).to(shown).magnitude
        labels[name] = f"{name} [{shown}]"
    return table, labels


def _is_risk(metric: str) -> bool:
    return metric.endswith("max_risk")


def default_metrics(table: pd.DataFrame) -> list[str]:
    """The risk of each interface and the largest von Mises stress, final and peak."""
    wanted = [c for c in table.columns
              if c.endswith(".max_risk") and c.startswith(("interfaces.", "peak.interfaces."))]
    wanted += [c for c in ("final.max_von_mises", "peak.max_von_mises") if c in table.columns]
    return [c for c in wanted if table[c].notna().any()]


def varied_parameters(table: pd.DataFrame, parameters: list[str]) -> list[str]:
    """Numeric parameters that take more than one value among the cases that ran."""
    return [p for p in parameters if p in table.columns
            and pd.api.types.is_numeric_dtype(table[p]) and table[p].nunique() > 1]


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _checks_failed(table: pd.DataFrame) -> pd.Series:
    if "checks_passed" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["checks_passed"].map(lambda passed: passed is False or passed == "False")


def plot(table: pd.DataFrame, parameters: list[str], method: str, out_dir: Path,
         metrics: list[str] | None = None) -> list[Path]:
    """Write the design maps of `table` (ok rows) into out_dir; returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table, labels = shown_units(table, table.attrs.get("units", {}),
                                table.attrs.get("written_units", {}))
    ok = table[table["status"] == "ok"]
    if "reference" not in ok.columns:  # results of a sweep without references
        ok = ok.assign(reference=None)
    is_reference = ok["reference"].notna()
    ok, references = ok[~is_reference], ok[is_reference]
    metrics = metrics or default_metrics(ok)
    varied = varied_parameters(ok, parameters)
    references = _matching(references, ok, [p for p in parameters if p not in varied])
    if ok.empty or not metrics or not varied:
        logger.warning("nothing to plot: %d ok case(s), metrics %s, varied parameters %s",
                       len(ok), metrics, varied)
        return []
    files = []
    for metric in metrics:
        if len(varied) == 1:
            files.append(_line(ok, varied[0], metric, out_dir, references, labels))
        elif len(varied) == 2:
            files.append(_heat_map(ok, varied, metric, out_dir, references, labels))
            if not references.empty:
                files.append(_lines_with_references(ok, varied, metric, out_dir, references,
                                                    labels))
        else:
            files.append(_parallel(ok, varied, metric, out_dir, labels))
        if len(varied) >= 2 and len(ok) >= len(varied) + 2:
            files.append(_sensitivity(ok, varied, metric, method, out_dir))
    return files


def _matching(references: pd.DataFrame, sample: pd.DataFrame, fixed: list[str]):
    """The reference rows at the sample's value of each parameter it does not vary (a
    reference that does not have the parameter matches any value)."""
    keep = pd.Series(True, index=references.index)
    for parameter in fixed:
        if parameter in sample.columns and parameter in references.columns \
                and sample[parameter].nunique() == 1:
            value = sample[parameter].iloc[0]
            keep &= references[parameter].isna() | (references[parameter] == value)
    return references[keep]


def _save(figure, path: Path) -> Path:
    _wrap_titles(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _wrap_titles(figure) -> None:
    """Break each axes title at spaces into lines as wide as the figure at most: tight_layout
    makes room for a title's height, not its width, and cuts a long one off at the edges
    (a metric's dotted name "vs" a parameter's is often wider than the plot)."""
    renderer = figure.canvas.get_renderer()
    width = 0.95 * figure.bbox.width
    for axes in figure.axes:
        title = axes.title
        lines = []
        for line in title.get_text().split("\n"):
            current = ""
            for word in line.split(" "):
                title.set_text(f"{current} {word}" if current else word)
                if current and title.get_window_extent(renderer).width > width:
                    lines.append(current)
                    current = word
                else:
                    current = title.get_text()
            lines.append(current)
        title.set_text("\n".join(lines))


def _plain_numbers(axes):
    """Tick labels as plain numbers in the axis's units: no offset, no power of ten."""
    for axis in (axes.xaxis, axes.yaxis):
        formatter = ScalarFormatter(useOffset=False)
        formatter.set_scientific(False)
        axis.set_major_formatter(formatter)


def _label(labels: dict, column: str) -> str:
    return labels.get(column, column)


def _finish(axes, labels: dict, x: str, y: str, title: str, metric: str):
    """Axis labels in units, plain tick numbers (no offset), and the risk limit."""
    if _is_risk(metric):
        axes.axhline(1.0, color="tab:red", ls=":", lw=1.5, label=DELAMINATION)
    axes.set(xlabel=_label(labels, x), ylabel=_label(labels, y), title=title)
    _plain_numbers(axes)
    axes.grid(True, alpha=0.3)


def _line(table, parameter, metric, out_dir, references, labels) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    ordered = table.sort_values(parameter)
    axes.plot(ordered[parameter], ordered[metric], "o-", label="sweep")
    _draw_references(axes, references, parameter, metric)
    failed = _checks_failed(ordered)
    if failed.any():
        axes.plot(ordered[parameter][failed], ordered[metric][failed], "rx", ms=10,
                  label="outside a check")
    _finish(axes, labels, parameter, metric, f"{metric} vs {parameter}", metric)
    if failed.any() or not references.empty or _is_risk(metric):
        axes.legend()
    return _save(figure, out_dir / f"line-{_file_name(metric)}.png")


def _lines_with_references(table, parameters, metric, out_dir, references, labels) -> Path:
    """The metric against the swept parameter a reference shares (else the first), one line
    per value of the other parameter, with the references: the comparison a heat map
    cannot show."""
    shared = [p for p in parameters if p in references and references[p].notna().all()]
    x = shared[0] if shared else parameters[0]
    other = next(p for p in parameters if p != x)
    figure, axes = plt.subplots(figsize=(6.5, 4.2))
    for level, rows in table.groupby(other):
        rows = rows.sort_values(x)
        axes.plot(rows[x], rows[metric], "o-", label=f"{_label(labels, other)} = {level:.4g}")
    _draw_references(axes, references, x, metric)
    _finish(axes, labels, x, metric, f"{metric} vs {x}", metric)
    axes.legend(fontsize=7)
    return _save(figure, out_dir / f"lines-{_file_name(metric)}.png")


def _draw_references(axes, references, parameter, metric):
    """Each reference as a dashed line against `parameter`, or a horizontal line at its
    value where it does not have that parameter."""
    for name, reference in references.groupby("reference"):
        if metric not in reference or reference[metric].isna().all():
            continue
        if parameter in reference and reference[parameter].notna().all():
            reference = reference.sort_values(parameter)
            axes.plot(reference[parameter], reference[metric], "s--", color="0.35",
                      label=f"reference: {name}")
        else:
            axes.axhline(reference[metric].mean(), ls="--", color="0.35",
                         label=f"reference: {name}")


def _heat_map(table, parameters, metric, out_dir, references, labels) -> Path:
    x, y = parameters
    figure, axes = plt.subplots(figsize=(6, 4.5))
    grid = table.pivot_table(index=y, columns=x, values=metric, aggfunc="mean")
    if grid.notna().all().all() and grid.size == len(table):
        image = axes.pcolormesh(grid.columns, grid.index, grid.values, shading="nearest")
    elif len(table) >= 3:
        image = axes.tricontourf(table[x], table[y], table[metric], levels=12)
        axes.plot(table[x], table[y], "k.", ms=3)
    else:
        image = axes.scatter(table[x], table[y], c=table[metric])
    colour_bar = figure.colorbar(image, ax=axes, label=_label(labels, metric))
    title = metric
    for name, reference in references.groupby("reference"):
        if metric in reference and reference[metric].notna().any():
            # a reference outside the sample's range widens the bar to show it
            low, high = colour_bar.mappable.get_clim()
            values = reference[metric].dropna()
            colour_bar.mappable.set_clim(min(low, values.min()), max(high, values.max()))
            for value in values:
                colour_bar.ax.axhline(value, color="w", ls="--", lw=1.5)
            title += f"\n(dashed on the bar: {name})"
    low, high = colour_bar.mappable.get_clim()
    if _is_risk(metric) and low <= 1.0 <= high:
        colour_bar.ax.axhline(1.0, color="tab:red", lw=2)
        if len(table) >= 3 and low < 1.0 < high:  # where the sample crosses the limit
            axes.tricontour(table[x], table[y], table[metric], levels=[1.0],
                            colors="tab:red", linewidths=2)
        title += f"\n(red: {DELAMINATION})"
    failed = _checks_failed(table)
    if failed.any():
        axes.plot(table[x][failed], table[y][failed], "rx", ms=10, label="outside a check")
        axes.legend(loc="best")
    axes.set(xlabel=_label(labels, x), ylabel=_label(labels, y), title=title)
    _plain_numbers(axes)
    return _save(figure, out_dir / f"map-{_file_name(metric)}.png")


def _parallel(table, parameters, metric, out_dir, labels) -> Path:
    columns = [*parameters, metric]
    values = table[columns].astype(float)
    span = (values.max() - values.min()).replace(0, 1)
    scaled = (values - values.min()) / span
    colour = plt.get_cmap("viridis")(scaled[metric].to_numpy())
    figure, axes = plt.subplots(figsize=(1.8 * len(columns) + 2, 4.5))
    for row, c in zip(scaled.to_numpy(), colour, strict=True):
        axes.plot(range(len(columns)), row, color=c, alpha=0.7)
    axes.set_xticks(range(len(columns)), [f"{_label(labels, c)}\n[{values[c].min():.3g}, "
                                          f"{values[c].max():.3g}]" for c in columns],
                    fontsize=7)
    axes.set(ylabel="scaled to [min, max]", title=f"parallel coordinates, coloured by {metric}")
    return _save(figure, out_dir / f"parallel-{_file_name(metric)}.png")


def sensitivity(table: pd.DataFrame, parameters: list[str], metric: str, method: str):
    """(measure name, {parameter: value}) for the metric; see the module docstring."""
    y = table[metric].to_numpy(dtype=float)
    x = table[parameters].to_numpy(dtype=float)
    if method == "sobol":
        total = y.var()
        bins = max(2, int(math.sqrt(len(y))))
        indices = {}
        for column, parameter in enumerate(parameters):
            groups = np.array_split(np.argsort(x[:, column]), bins)
            means = np.array([y[g].mean() for g in groups])
            sizes = np.array([len(g) for g in groups])
            explained = np.sum(sizes * (means - y.mean()) ** 2) / len(y)
            indices[parameter] = explained / total if total > 0 else 0.0
        return "first-order Sobol index (binning estimate)", indices
    scale = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(scale > 0, scale, 1)
    zy = (y - y.mean()) / (y.std() or 1)
    coefficients, *_ = np.linalg.lstsq(np.column_stack([z, np.ones(len(y))]), zy, rcond=None)
    fitted = np.column_stack([z, np.ones(len(y))]) @ coefficients
    r2 = 1 - np.sum((zy - fitted) ** 2) / max(np.sum(zy ** 2), 1e-300)
    return (f"standardized regression coefficient (R^2 = {r2:.2f})",
            dict(zip(parameters, coefficients[:-1], strict=True)))


def _sensitivity(table, parameters, metric, method, out_dir) -> Path:
    measure, values = sensitivity(table, parameters, metric, method)
    ranked = sorted(values.items(), key=lambda item: abs(item[1]))
    figure, axes = plt.subplots(figsize=(6, 1 + 0.5 * len(ranked)))
    axes.barh([name for name, _ in ranked], [value for _, value in ranked])
    axes.axvline(0, color="k", lw=0.8)
    axes.set(xlabel=measure, title=f"sensitivity of {metric}")
    return _save(figure, out_dir / f"sensitivity-{_file_name(metric)}.png")
