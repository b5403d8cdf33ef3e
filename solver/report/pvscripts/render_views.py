"""Run by ParaView's pvbatch, not by the solver: `pvbatch render_views.py PARAMETERS_JSON`.

Draws von Mises stress on the deformed shape with the material outlines (the whole model
and a close-up of the interface) and saves the pipeline as a state file. Prints, as its
last line, the JSON list of the files it wrote.
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
DISPLACEMENT_ON_SCREEN = 0.04  # the largest displacement, drawn as this fraction of the model


def main(parameters):
    simple.LoadPalette("WhiteBackground")
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
    largest_displacement = combined.PointData["u"].GetRange(-1)[1]
    scale = _magnification(DISPLACEMENT_ON_SCREEN * size, largest_displacement)
    two_d = bounds[5] - bounds[4] <= 1e-9 * size

    in_mpa = simple.Calculator(registrationName="von Mises in MPa", Input=combined,
                               AttributeType="Cell Data", ResultArrayName=STRESS,
                               Function="von_mises/1e6")
    deformed = simple.WarpByVector(registrationName=f"deformed x{scale:g}", Input=in_mpa,
                                   Vectors=["POINTS", "u"], ScaleFactor=scale)
    # In micrometres, so that the axes read in the unit of the geometry.
    micrometres = simple.Transform(registrationName="in micrometres", Input=deformed)
    micrometres.Transform.Scale = [1e6, 1e6, 1e6]

    view = simple.CreateView("RenderView")
    view.ViewTime = end
    view.OrientationAxesVisibility = 0
    display = simple.Show(micrometres, view)
    simple.ColorBy(display, ("CELLS", STRESS))
    stress_colours = simple.GetColorTransferFunction(STRESS)
    stress_colours.ApplyPreset("Turbo", True)
    display.RescaleTransferFunctionToDataRange(False, True)
    display.SetScalarBarVisibility(view, True)
    display.DataAxesGrid.GridAxesVisibility = 1
    display.DataAxesGrid.XTitle = "x [um]"
    display.DataAxesGrid.YTitle = "y [um]"
    display.DataAxesGrid.ZTitle = "z [um]"
    bar = simple.GetScalarBar(stress_colours, view)
    bar.Title = STRESS
    bar.ComponentTitle = ""
    bar.RangeLabelFormat = "%.0f"
    outlines = [_material_outline(micrometres, int(tag), name, view)
                for tag, name in parameters["materials"].items()]
    time_label = (f"t = {end:.0f} s of the schedule, "
                  f"{parameters['final_temperature'] - 273.15:.0f} degC")
    title = simple.Text(registrationName="title", Text=(
        f"{parameters['case']}: von Mises stress, {time_label}\n"
        f"displacement magnified x{scale:g}; outlines: "
        + ", ".join(parameters["materials"].values())))
    title_display = simple.Show(title, view)
    title_display.WindowLocation = "Upper Left Corner"
    title_display.FontSize = 16
    # Over the model in a close-up: on a white band, to stay readable (the band is drawn
    # only with the border).
    title_display.BackgroundColor = [1.0, 1.0, 1.0, 0.85]
    title_display.ShowBorder = "Always"
    title_display.BorderColor = [1.0, 1.0, 1.0]

    out = Path(parameters["out"])
    model = [b * 1e6 for b in bounds]
    _frame(view, model, two_d)
    written = [_screenshot(view, out / "von_mises.png")]

    title.Text = (f"{parameters['case']}: von Mises stress near the "
                  + parameters["closeup_subject"]
                  + f", {time_label}\ndisplacement magnified x{scale:g}")
    _frame(view, _closeup_bounds(parameters, model, 1e6 * scale * largest_displacement), two_d)
    written.append(_screenshot(view, out / "closeup.png"))

    # The state opens on the whole model, at whatever time the user then chooses.
    title.Text = (f"{parameters['case']}: von Mises stress, "
                  f"displacement magnified x{scale:g}")
    _frame(view, model, two_d)
    simple.SaveState(str(out / "fields.pvsm"))
    written.append(out / "fields.pvsm")

    # Without this pvbatch ends with "GLXBadContext" and exit status 1.
    for source in [title, *outlines, micrometres]:
        simple.Hide(source, view)
    simple.Delete(view)
    print(json.dumps([str(path) for path in written]))


def _material_outline(data, tag, name, view):
    """The outline of the cells of one material tag, as black lines."""
    cells = simple.Threshold(registrationName=f"{name} (tag {tag})", Input=data,
                             Scalars=["CELLS", "materials"], ThresholdMethod="Between",
                             LowerThreshold=tag - 0.5, UpperThreshold=tag + 0.5)
    surface = simple.ExtractSurface(registrationName=f"{name} surface", Input=cells)
    edges = simple.FeatureEdges(registrationName=f"{name} outline", Input=surface,
                                BoundaryEdges=1, FeatureEdges=1, NonManifoldEdges=0,
                                ManifoldEdges=0, Coloring=0)
    display = simple.Show(edges, view)
    display.ColorArrayName = ["POINTS", ""]
    display.AmbientColor = display.DiffuseColor = [0.0, 0.0, 0.0]
    display.LineWidth = 2.0
    return edges


def _magnification(on_screen, largest):
    """A round factor (1, 2 or 5 times a power of ten) that draws `largest` about `on_screen`."""
    if largest <= 0.0:
        return 1.0
    wanted = on_screen / largest
    power = 10.0 ** math.floor(math.log10(wanted))
    return max(step * power for step in (1, 2, 5) if step * power <= wanted)


def _image_size(width, height):
    """Pixels for a picture of a region of this shape: the long side IMAGE_LONG_SIDE, the
    short side at least half of it (room for the title and the colour bar)."""
    aspect = min(max(width / height, 0.5), 2.0) if height > 0 else 2.0
    if aspect >= 1:
        return IMAGE_LONG_SIDE, int(IMAGE_LONG_SIDE / aspect)
    return int(IMAGE_LONG_SIDE * aspect), IMAGE_LONG_SIDE


def _closeup_bounds(parameters, model, shift):
    """The region of the close-up in micrometres, within the model: the box of the interface
    facets, or, for a flat interface (a flat box: a line in 2D, a plane in 3D), a square (a
    cube) as tall as the model around its highest risk. The facets are where they were before
    the deformation: `shift` more on every side."""
    box = parameters["closeup"]
    axes = 2 if model[5] - model[4] <= 1e-9 * (model[1] - model[0]) else 3
    up = axes - 1  # the stacking direction: y in 2D, z in 3D
    lower = [v * 1e6 for v in box["lower"][:axes]]
    upper = [v * 1e6 for v in box["upper"][:axes]]
    extent = [u - lo for u, lo in zip(upper, lower, strict=True)]
    height = model[2 * up + 1] - model[2 * up]
    if min(extent) < 0.05 * max(extent):
        centre = [v * 1e6 for v in box["highest_risk"][:axes]]
        half = height / 2 + shift
        lower, upper = [c - half for c in centre], [c + half for c in centre]
    else:
        margin = 0.2 * max(extent) + shift
        lower, upper = [v - margin for v in lower], [v + margin for v in upper]
    edge = 0.02 * height  # beyond the model: enough to see its outline
    bounds = []
    for axis in range(axes):
        bounds += [max(lower[axis], model[2 * axis] - edge),
                   min(upper[axis], model[2 * axis + 1] + edge)]
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


if __name__ == "__main__":
    # A Programmable Filter runs its script in __main__ and replaces min, max, abs... there
    # with numpy's; run the functions from this file imported as a module of its own.
    sys.path.insert(0, str(Path(__file__).parent))
    import render_views

    render_views.main(json.loads(sys.argv[1]))
