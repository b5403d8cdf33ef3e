"""Run by ParaView's pvbatch, not by the solver: `pvbatch render_views.py PARAMETERS_JSON`.

Draws the von Mises stress on the undeformed shape with the material outlines (the whole
model and a close-up of the interface) and saves the pipeline as a state file. Prints, as
its last line, the JSON list of the files it wrote.

The stress is written cell-wise (cell averages, docs/outputs.md); the pictures show it
averaged to the nodes within each material (ParaView's Cell Data to Point Data on each
material's cells alone), so the field reads smoothly inside a material and keeps its jump
across a material boundary. The colour map is viridis, perceptually uniform (its lightness
rises monotonically: Moreland, "Why we use bad color maps", 2016), and the coordinates are
those of the geometry, not magnified displacements.
"""

import json
import math
import sys
from pathlib import Path

from paraview import simple

# fields.xdmf gives one block per field and tags.xdmf one per tag set, each a copy of the
# same mesh: this puts the arrays of every block that is the whole mesh onto one grid.
COMBINE_BLOCKS = """
import numpy
from vtkmodules.util.numpy_support import vtk_to_numpy

def leaves(data):
    iterator = data.NewIterator()
    iterator.InitTraversal()
    while not iterator.IsDoneWithTraversal():
        yield iterator.GetCurrentDataObject()
        iterator.GoToNextItem()

def connectivity(grid):
    return vtk_to_numpy(grid.GetCells().GetConnectivityArray())

blocks = [leaf for connection in range(self.GetNumberOfInputConnections(0))
          for leaf in leaves(self.GetInputDataObject(0, connection))]
mesh = blocks[0]
cells = connectivity(mesh)
combined = self.GetOutput()
combined.CopyStructure(mesh)
for block in blocks:
    if (block.GetNumberOfPoints() != mesh.GetNumberOfPoints()
            or not numpy.array_equal(connectivity(block), cells)):
        continue  # the facet tags: other cells
    for source, target in ((block.GetPointData(), combined.GetPointData()),
                           (block.GetCellData(), combined.GetCellData())):
        for index in range(source.GetNumberOfArrays()):
            target.AddArray(source.GetArray(index))
"""

STRESS = "von Mises [MPa]"
IMAGE_LONG_SIDE = 1400  # px


def main(parameters):
    simple.LoadPalette("WhiteBackground")
    # The outlines lie on the faces of the model: drawn in front of them, not in and out
    # of them (ParaView's default offset of lines, -4 depth units, leaves them dashed).
    simple.GetSettingsProxy("RenderViewSettings").LineOffsetParameters = [-2.0, -40.0]
    fields = simple.Xdmf3ReaderS(registrationName="fields.xdmf", FileName=parameters["fields"])
    tags = simple.Xdmf3ReaderS(registrationName="tags.xdmf", FileName=parameters["tags"])
    # ParaView gives the one time of a result written at its final state alone as a number
    times = fields.TimestepValues
    end = times if isinstance(times, float | int) else times[-1]
    combined = simple.ProgrammableFilter(registrationName="all fields on one mesh",
                                         Input=[fields, tags])
    combined.OutputDataSetType = "vtkUnstructuredGrid"
    combined.Script = COMBINE_BLOCKS
    combined.UpdatePipeline(end)
    bounds = combined.GetDataInformation().GetBounds()
    size = math.dist(bounds[0::2], bounds[1::2])
    two_d = bounds[5] - bounds[4] <= 1e-9 * size

    in_mpa = simple.Calculator(registrationName="von Mises in MPa", Input=combined,
                               AttributeType="Cell Data", ResultArrayName=STRESS,
                               Function="von_mises/1e6")
    # In micrometres, so that the axes read in the unit of the geometry.
    micrometres = simple.Transform(registrationName="in micrometres", Input=in_mpa)
    micrometres.Transform.Scale = [1e6, 1e6, 1e6]
    smooth, outlines = [], []
    for tag, name in parameters["materials"].items():
        stress, outline = _material(micrometres, int(tag), name)
        smooth.append(stress)
        outlines.append(outline)
    # Points on a material boundary stay one per material: the stress keeps its jump there.
    stress = simple.AppendDatasets(registrationName="von Mises averaged to the nodes of each "
                                   "material", Input=smooth)
    outline = simple.AppendDatasets(registrationName="material outlines", Input=outlines)

    view = simple.CreateView("RenderView")
    view.ViewTime = end
    view.OrientationAxesVisibility = 0
    stress_colours = simple.GetColorTransferFunction(STRESS)
    # the preset's name since ParaView 6, and before it
    for preset in ("Viridis", "Viridis (matplotlib)"):
        try:
            if stress_colours.ApplyPreset(preset, True) is not False:
                break
        except RuntimeError:  # ParaView 6: no preset of that name
            continue
    # The bar spans the cell values, whose largest is the summary's: the nodal averages
    # drawn lie within it.
    stress_range = in_mpa.CellData[STRESS].GetRange()
    bar = simple.GetScalarBar(stress_colours, view)
    bar.Title = STRESS
    bar.ComponentTitle = ""
    bar.RangeLabelFormat = "%.0f"
    time_label = (f"t = {end:.0f} s of the schedule, "
                  f"{parameters['final_temperature'] - 273.15:.0f} degC")
    title = simple.Text(registrationName="title", Text=(
        f"{parameters['case']}: von Mises stress, {time_label}\n"
        "on the undeformed shape; outlines: " + ", ".join(parameters["materials"].values())))
    title_display = simple.Show(title, view)
    title_display.WindowLocation = "Upper Center"
    title_display.FontSize = 16

    out = Path(parameters["out"])
    model = [b * 1e6 for b in bounds]
    shown = _show(stress, outline, view, stress_colours, stress_range)
    _frame(view, model, two_d)
    written = [_screenshot(view, out / "von_mises.png")]

    # The close-up: the model cut to the box around the interface, so that its axes, the
    # title and the colour bar lie beside the field, not over it.
    region = _closeup_bounds(parameters, model)
    stress_near, outline_near = (_cut(source, region, model, f"{name} near the interface")
                                 for source, name in ((stress, "von Mises"),
                                                      (outline, "outlines")))
    for source in shown:
        simple.Hide(source, view)
    shown = _show(stress_near, outline_near, view, stress_colours, stress_range)
    title.Text = (f"{parameters['case']}: von Mises stress near the "
                  + parameters["closeup_subject"] + f",\n{time_label}, on the undeformed shape")
    _frame(view, region, two_d)
    written.append(_screenshot(view, out / "closeup.png"))

    # The state opens on the whole model, at whatever time the user then chooses.
    for source in shown:
        simple.Hide(source, view)
    shown = _show(stress, outline, view, stress_colours, stress_range)
    title.Text = f"{parameters['case']}: von Mises stress on the undeformed shape"
    _frame(view, model, two_d)
    simple.SaveState(str(out / "fields.pvsm"))
    written.append(out / "fields.pvsm")

    # Without this pvbatch ends with "GLXBadContext" and exit status 1.
    for source in [title, *shown]:
        simple.Hide(source, view)
    simple.Delete(view)
    print(json.dumps([str(path) for path in written]))


def _material(data, tag, name):
    """The cells of one material tag with their stress averaged to their nodes, and their
    outline."""
    cells = simple.Threshold(registrationName=f"{name} (tag {tag})", Input=data,
                             Scalars=["CELLS", "materials"], ThresholdMethod="Between",
                             LowerThreshold=tag - 0.5, UpperThreshold=tag + 0.5)
    nodal = simple.CellDatatoPointData(registrationName=f"{name}: von Mises at the nodes",
                                       Input=cells)
    nodal.ProcessAllArrays = 0
    nodal.CellDataArraytoprocess = [STRESS]
    surface = simple.ExtractSurface(registrationName=f"{name} surface", Input=cells)
    edges = simple.FeatureEdges(registrationName=f"{name} outline", Input=surface,
                                BoundaryEdges=1, FeatureEdges=1, NonManifoldEdges=0,
                                ManifoldEdges=0, Coloring=0)
    return nodal, edges


def _cut(source, region, model, name):
    """The part of `source` inside the box `region` (xmin, xmax, ymin, ymax, zmin, zmax),
    cut by a plane at each side of it within the `model`'s box: a plane cuts the linear
    cells exactly and leaves the others as they are (a box clip cuts the corners it crosses
    obliquely, or, exact, splits every cell into new ones the outlines no longer lie on)."""
    for axis in range(3):
        for side, sign in ((0, -1.0), (1, 1.0)):
            at = region[2 * axis + side]
            if (at - model[2 * axis]) * (model[2 * axis + 1] - at) <= 0.0:
                continue  # at or beyond the model's face: nothing to cut
            normal = [0.0, 0.0, 0.0]
            normal[axis] = sign
            source = simple.Clip(registrationName=f"{name}, {'xyz'[axis]} "
                                 f"{'>' if side == 0 else '<'} {at:.4g} um",
                                 Input=source, ClipType="Plane", Invert=1, Crinkleclip=0)
            source.ClipType.Origin = [at if i == axis else 0.0 for i in range(3)]
            source.ClipType.Normal = normal
    return source


def _show(stress, outline, view, colours, value_range):
    """Show the stress field (coloured over `value_range`, with its colour bar and axes) and
    the outlines."""
    display = simple.Show(stress, view)
    simple.ColorBy(display, ("POINTS", STRESS))
    colours.AutomaticRescaleRangeMode = "Never"
    colours.RescaleTransferFunction(*value_range)
    # Unlit: the colours on the model are those of the bar (a lit face is darker).
    display.Ambient, display.Diffuse = 1.0, 0.0
    display.SetScalarBarVisibility(view, True)
    display.DataAxesGrid.GridAxesVisibility = 1
    display.DataAxesGrid.XTitle = "x [um]"
    display.DataAxesGrid.YTitle = "y [um]"
    display.DataAxesGrid.ZTitle = "z [um]"
    lines = simple.Show(outline, view)
    lines.ColorArrayName = ["POINTS", ""]
    lines.AmbientColor = lines.DiffuseColor = [0.0, 0.0, 0.0]
    lines.LineWidth = 2.0
    return [stress, outline]


def _image_size(width, height):
    """Pixels for a picture of a region of this shape: the long side IMAGE_LONG_SIDE, the
    short side at least half of it (room for the title and the colour bar)."""
    aspect = min(max(width / height, 0.5), 2.0) if height > 0 else 2.0
    if aspect >= 1:
        return IMAGE_LONG_SIDE, int(IMAGE_LONG_SIDE / aspect)
    return int(IMAGE_LONG_SIDE * aspect), IMAGE_LONG_SIDE


def _closeup_bounds(parameters, model):
    """The region of the close-up in micrometres, within the model: the box of the interface
    facets, or, for a flat interface (a flat box: a line in 2D, a plane in 3D), a square (a
    cube) as tall as the model around its highest risk."""
    box = parameters["closeup"]
    axes = 2 if model[5] - model[4] <= 1e-9 * (model[1] - model[0]) else 3
    up = axes - 1  # the stacking direction: y in 2D, z in 3D
    lower = [v * 1e6 for v in box["lower"][:axes]]
    upper = [v * 1e6 for v in box["upper"][:axes]]
    extent = [u - lo for u, lo in zip(upper, lower, strict=True)]
    height = model[2 * up + 1] - model[2 * up]
    if min(extent) < 0.05 * max(extent):
        centre = [v * 1e6 for v in box["highest_risk"][:axes]]
        half = height / 2
        lower, upper = [c - half for c in centre], [c + half for c in centre]
    else:
        margin = 0.2 * max(extent)
        lower, upper = [v - margin for v in lower], [v + margin for v in upper]
    bounds = []
    for axis in range(axes):
        bounds += [max(lower[axis], model[2 * axis]), min(upper[axis], model[2 * axis + 1])]
    return bounds + ([model[4], model[5]] if axes == 2 else [])


def _frame(view, bounds, two_d):
    """Size the view for a region (xmin, xmax, ymin, ymax, zmin, zmax) and aim at it."""
    view.ViewSize = _image_size(bounds[1] - bounds[0], bounds[3] - bounds[2])
    _look_at(view, bounds, two_d)


def _screenshot(view, path):
    simple.SaveScreenshot(str(path), view, ImageResolution=list(view.ViewSize))
    return path


def _look_at(view, bounds, two_d):
    """Frame a box (xmin, xmax, ymin, ymax, zmin, zmax) in the view at its current size:
    straight down in 2D, from the front-right-above in 3D."""
    centre = [(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2,
              (bounds[4] + bounds[5]) / 2]
    size = math.dist(bounds[0::2], bounds[1::2])
    if two_d:
        width, height = view.ViewSize
        # A quarter of the height to spare for the axis labels and, at the top, the title.
        half_height = 1.25 * max(bounds[3] - bounds[2],
                                 (bounds[1] - bounds[0]) * height / width) / 2
        centre[1] += 0.1 * half_height
        view.InteractionMode = "2D"
        view.CameraFocalPoint = centre
        view.CameraPosition = [centre[0], centre[1], centre[2] + 2 * size]
        view.CameraViewUp = [0.0, 1.0, 0.0]
        view.CameraParallelProjection = 1
        view.CameraParallelScale = half_height
    else:
        view.CameraFocalPoint = centre
        view.CameraPosition = [centre[0] + size, centre[1] - size, centre[2] + size]
        view.CameraViewUp = [0.0, 0.0, 1.0]
        view.ResetCamera(bounds, False)
        # back off from the tight fit: room at the top for the title, beside for the labels
        view.GetActiveCamera().Dolly(0.85)


if __name__ == "__main__":
    # A Programmable Filter runs its script in __main__ and replaces min, max, abs... there
    # with numpy's; run the functions from this file imported as a module of its own.
    sys.path.insert(0, str(Path(__file__).parent))
    import render_views

    render_views.main(json.loads(sys.argv[1]))
