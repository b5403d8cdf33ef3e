"""The domain J-integral (solver/post/jintegral.py) against closed forms, its path independence
under an eigenstrain gradient, and 1 against 2 ranks.

The meshes are built here with Gmsh's built-in kernel in micrometres (on rank 0, imported
with solver.numerics.compat.model_to_mesh like solver.geometry.mesh.build_mesh does), refined
around the tip.
"""

import gmsh
import numpy as np
import pytest
import ufl
from dolfinx import fem, mesh
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from meshes.built import MICROMETRE
from solver.geometry.mesh import build_mesh
from solver.materials.elasticity import hooke, lame
from solver.numerics import compat
from solver.numerics.fields import cellwise_field, field_by_tag
from solver.numerics.linear import configured_ksp, direct_solver, solve_dirichlet
from solver.physics.cohesive import CohesiveLaw, CohesiveProblem
from solver.post.jintegral import (
    cohesive_displacement,
    initial_stress_eigenstrain,
    j_integral,
    plane_strain_stress,
)

from conftest import layers_case

UM = MICROMETRE
E, NU = 100e9, 0.3
LAMBDA, MU = lame(E, NU)

# Edge-cracked strip (upper half, by symmetry): width b, crack a, half-height H.
STRIP_WIDTH, STRIP_CRACK, STRIP_HALF_HEIGHT = 10.0, 3.0, 20.0  # um
TENSION = 100e6  # Pa
# Debonded film: film h on a substrate 3 h (bottom clamped), debonded 10 h from the free
# left edge, bonded over 20 h to a symmetry plane (10 h ahead gave 1.1 % less: the bonded
# film's stress reaches its far value over a length set by the substrate's compliance).
FILM, SUBSTRATE, DEBOND, BONDED = 1.0, 3.0, 10.0, 20.0  # um
FILM_TAG, SUBSTRATE_TAG = 2, 1


def _imported(comm, build):
    """Run build() on a fresh Gmsh model on rank 0 and distribute the mesh over comm (SI)."""
    if comm.rank == 0:
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.model.add("jintegral")
        build()
    msh, cell_tags, facet_tags = compat.model_to_mesh(
        gmsh.model if comm.rank == 0 else None, comm, 0, 2, compat.shared_facet_partitioner())
    if comm.rank == 0:
        gmsh.finalize()
    msh.geometry.x[:] *= UM
    for dim in (0, 1):
        msh.topology.create_connectivity(dim, 2)
    return msh, cell_tags, facet_tags


def _refined_at(point, tip_size, far_size, reach):
    """Elements tip_size at a point, growing to far_size over `reach` (um)."""
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "PointsList", [point])
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", distance)
    field.setNumber(threshold, "SizeMin", tip_size)
    field.setNumber(threshold, "SizeMax", far_size)
    field.setNumber(threshold, "DistMin", 2 * tip_size)
    field.setNumber(threshold, "DistMax", reach)
    field.setAsBackgroundMesh(threshold)
    for option in ("MeshSizeExtendFromBoundary", "MeshSizeFromPoints", "MeshSizeFromCurvature"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)


def edge_crack_strip(comm, tip_size=0.04, far_size=1.0, boundary=None):
    """The upper half [0, b] x [0, H] of a strip with an edge crack of length a at y = 0:
    facets 1 crack face (0 < x < a), 2 ligament (a < x < b), 3 top. Cells 1; with a
    `boundary` x (um, a < x < b), cells 2 beyond it (a second material)."""

    def build():
        geo = gmsh.model.geo
        b, a, height = STRIP_WIDTH, STRIP_CRACK, STRIP_HALF_HEIGHT
        cuts = [a] if boundary is None else [a, boundary]
        bottom = [geo.addPoint(x, 0, 0) for x in (0, *cuts, b)]
        top = [geo.addPoint(x, height, 0) for x in (0, *cuts[1:], b)]
        lower = [geo.addLine(p, q) for p, q in zip(bottom[:-1], bottom[1:], strict=True)]
        upper = [geo.addLine(p, q) for p, q in zip(top[1:], top[:-1], strict=True)]
        # the pieces between verticals: [0, a or boundary] and [boundary, b]
        sides = [geo.addLine(bottom[0], top[0]), *([geo.addLine(bottom[2], top[1])]
                                                   if boundary is not None else []),
                 geo.addLine(bottom[-1], top[-1])]
        columns = [lower] if boundary is None else [lower[:-1], lower[-1:]]
        surfaces = []
        for index, pieces in enumerate(columns):
            loop = [*pieces, sides[index + 1], upper[index], -sides[index]]
            surfaces.append(geo.addPlaneSurface([geo.addCurveLoop(loop)]))
        geo.synchronize()
        gmsh.model.addPhysicalGroup(1, [lower[0]], 1)
        gmsh.model.addPhysicalGroup(1, lower[1:], 2)
        gmsh.model.addPhysicalGroup(1, upper, 3)
        for tag, surface in enumerate(surfaces, start=1):
            gmsh.model.addPhysicalGroup(2, [surface], tag)
        _refined_at(bottom[1], tip_size, far_size, 4.0)
        gmsh.model.mesh.generate(2)

    return _imported(comm, build)


def debonded_film(comm, tip_size=0.04, far_size=0.5):
    """A film (cells FILM_TAG) on a substrate (SUBSTRATE_TAG), debonded from the free left
    edge to the tip at x = DEBOND: the crack is two curves with their own nodes, joined only
    at the tip. Facets: 1 substrate bottom, 2 right (both layers)."""

    def build():
        geo = gmsh.model.geo
        hs, top, length = SUBSTRATE, SUBSTRATE + FILM, DEBOND + BONDED
        bottom_left, bottom_right = geo.addPoint(0, 0, 0), geo.addPoint(length, 0, 0)
        corner, tip = geo.addPoint(length, hs, 0), geo.addPoint(DEBOND, hs, 0)
        substrate_edge, film_edge = geo.addPoint(0, hs, 0), geo.addPoint(0, hs, 0)
        top_right, top_left = geo.addPoint(length, top, 0), geo.addPoint(0, top, 0)
        bottom = geo.addLine(bottom_left, bottom_right)
        right_substrate, bonded = geo.addLine(bottom_right, corner), geo.addLine(corner, tip)
        lower_face = geo.addLine(tip, substrate_edge)
        left_substrate = geo.addLine(substrate_edge, bottom_left)
        upper_face = geo.addLine(film_edge, tip)
        right_film, film_top = geo.addLine(corner, top_right), geo.addLine(top_right, top_left)
        left_film = geo.addLine(top_left, film_edge)
        substrate = geo.addPlaneSurface([geo.addCurveLoop(
            [bottom, right_substrate, bonded, lower_face, left_substrate])])
        film = geo.addPlaneSurface([geo.addCurveLoop(
            [upper_face, -bonded, right_film, film_top, left_film])])
        geo.synchronize()
        gmsh.model.addPhysicalGroup(1, [bottom], 1)
        gmsh.model.addPhysicalGroup(1, [right_substrate, right_film], 2)
        gmsh.model.addPhysicalGroup(2, [substrate], SUBSTRATE_TAG)
        gmsh.model.addPhysicalGroup(2, [film], FILM_TAG)
        _refined_at(tip, tip_size, far_size, 3.0)
        gmsh.model.mesh.generate(2)

    return _imported(comm, build)


def _facet_dofs(space, facet_tags, tag):
    return fem.locate_dofs_topological(space, 1, facet_tags.find(tag))


def _vertex_dofs(space, msh, point_um):
    vertices = mesh.locate_entities(msh, 0, lambda x: np.isclose(x[0], point_um[0] * UM)
                                    & np.isclose(x[1], point_um[1] * UM))
    return fem.locate_dofs_topological(space, 0, vertices)


def solve_elastic(msh, held, lmbda=LAMBDA, shear=MU, eigenstrain=None, traction=None,
                  out_of_plane_strain=0.0):
    """Plane-strain (or generalized) linear elasticity, P2, direct solver. held: (component,
    dofs) pairs held at zero; traction: (facet_tags, tag, vector) on the boundary."""
    V = fem.functionspace(msh, ("Lagrange", 2, (2,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    # the in-plane stress, written out: UFL's lhs/rhs split cannot take the 3x3 one apart
    strain = ufl.sym(ufl.grad(u)) - (0.0 if eigenstrain is None else eigenstrain) \
        * ufl.Identity(2)
    eigen_zz = 0.0 if eigenstrain is None else eigenstrain
    in_plane = hooke(strain, lmbda, shear, ufl.tr(strain) + out_of_plane_strain - eigen_zz)
    residual = ufl.inner(in_plane, ufl.sym(ufl.grad(v))) / E * ufl.dx
    if traction is not None:
        facet_tags, tag, vector = traction
        ds = ufl.Measure("ds", domain=msh, subdomain_data=facet_tags)(tag)
        residual -= ufl.dot(ufl.as_vector(vector), v) / E * ds
    bcs = [fem.dirichletbc(PETSc.ScalarType(0.0), dofs, V.sub(component))
           for component, dofs in held(V)]
    a, L = fem.form(ufl.lhs(residual)), fem.form(ufl.rhs(residual))
    A = fem_petsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    ksp = configured_ksp(msh.comm, "jintegral-test", direct_solver(msh.comm))
    ksp.setOperators(A)
    displacement = solve_dirichlet(ksp, a, L, bcs, fem.Function(V))
    for obj in (ksp, A):
        obj.destroy()
    return displacement, plane_strain_stress(displacement, lmbda, shear, eigenstrain,
                                             out_of_plane_strain)


def strip_under_tension(comm, eigenstrain=None, far_size=1.0):
    """The half strip: symmetry roller on the ligament, u_x = 0 at the tip, tension on top;
    eigenstrain(msh) gives the eigenstrain field."""
    msh, _, facet_tags = edge_crack_strip(comm, far_size=far_size)

    def held(V):
        return [(1, _facet_dofs(V.sub(1), facet_tags, 2)),
                (0, _vertex_dofs(V.sub(0), msh, (STRIP_CRACK, 0.0)))]

    if eigenstrain is not None:
        eigenstrain = eigenstrain(msh)
    u, sigma = solve_elastic(msh, held, eigenstrain=eigenstrain,
                             traction=(facet_tags, 3, (0.0, TENSION)))
    return u, sigma, eigenstrain


def strip_j(u, sigma, eigenstrain, radius_um, **options):
    """J of the full strip (twice the half model's) at the tip, direction +x."""
    return 2 * j_integral(u, sigma, eigenstrain, (STRIP_CRACK * UM, 0.0), (1.0, 0.0),
                          radius_um * UM, **options)


def tada_edge_crack_j():
    """J = K_I^2 (1 - nu^2) / E, K_I = sigma sqrt(pi a) F(a/b) with Tada's fit for an edge
    crack in a long strip in tension (0.5 % for a/b <= 0.6):
    F = 1.12 - 0.231 s + 10.55 s^2 - 21.72 s^3 + 30.39 s^4."""
    s = STRIP_CRACK / STRIP_WIDTH
    shape = 1.12 - 0.231 * s + 10.55 * s**2 - 21.72 * s**3 + 30.39 * s**4
    k = TENSION * np.sqrt(np.pi * STRIP_CRACK * UM) * shape
    return k**2 * (1 - NU**2) / E


# -- a. sanity ------------------------------------------------------------------------------

@pytest.mark.parametrize("plane", ["strain", "generalized"])
def test_uniform_eigenstrain_in_a_free_body_gives_no_j(plane):
    """A uniform eigenstrain in the cracked strip with no load expands it freely: in-plane
    stress zero. In generalized plane strain (e_zz = eps*) the body is stress free and W = 0;
    in plane strain sigma_33 = -E eps* stays and W = E eps*^2 / 2 is uniform, so (1) is
    -W int q,1 dA = -W int q n_1 ds = 0 (n_1 = 0 on the crack face), up to the quadrature of
    the cells cut by q's support. |J| below 1e-4 of W R (measured: 5e-6 and 1.7e-5 in plane
    strain, 6e-13 in generalized plane strain)."""
    misfit = 2e-3
    out_of_plane = misfit if plane == "generalized" else 0.0
    msh, _, facet_tags = edge_crack_strip(MPI.COMM_WORLD)

    def held(V):
        return [(1, _facet_dofs(V.sub(1), facet_tags, 2)),
                (0, _vertex_dofs(V.sub(0), msh, (STRIP_CRACK, 0.0)))]

    eigenstrain = fem.Constant(msh, PETSc.ScalarType(misfit))
    u, sigma = solve_elastic(msh, held, eigenstrain=eigenstrain,
                             out_of_plane_strain=out_of_plane)
    for radius in (1.0, 2.0):
        value = j_integral(u, sigma, eigenstrain, (STRIP_CRACK * UM, 0.0), (1.0, 0.0),
                           radius * UM, out_of_plane_strain=out_of_plane)
        assert abs(value) <= 1e-4 * E * misfit**2 / 2 * radius * UM, value


def test_edge_crack_in_tension_matches_tada():
    """Edge crack a = 0.3 b in a strip (half-height 2 b) under remote tension, plane strain,
    P2, 0.04 um at the tip: J = K_I^2 (1 - nu^2) / E within 2 % (Tada's fit is 0.5 %;
    measured 0.1 %) on every radius."""
    u, sigma, _ = strip_under_tension(MPI.COMM_WORLD)
    expected = tada_edge_crack_j()
    for radius in (0.5, 1.0, 2.0):
        assert strip_j(u, sigma, None, radius) == pytest.approx(expected, rel=0.02)


def test_generalized_plane_strain_with_an_axial_strain_keeps_j():
    """The strip in tension with an imposed out-of-plane strain e_zz = 2e-3 (generalized plane
    strain): the added field is a compatible uniform expansion plus sigma_33 = E e_zz, whose
    energy cross term with the plane-strain crack field vanishes (sigma_33 = nu (sigma_11 +
    sigma_22) there), so J is the plane-strain J: within 1e-3 (measured 2e-5 to 4e-4). Left out of
    W (out_of_plane_strain not passed), it is off by 3 to 7 % and path dependent."""
    msh, _, facet_tags = edge_crack_strip(MPI.COMM_WORLD)

    def held(V):
        return [(1, _facet_dofs(V.sub(1), facet_tags, 2)),
                (0, _vertex_dofs(V.sub(0), msh, (STRIP_CRACK, 0.0)))]

    top = (facet_tags, 3, (0.0, TENSION))
    plane = strip_j(*solve_elastic(msh, held, traction=top), None, 1.0)
    axial = 2e-3
    u, sigma = solve_elastic(msh, held, traction=top, out_of_plane_strain=axial)
    for radius in (0.5, 1.0, 2.0):
        assert strip_j(u, sigma, None, radius, out_of_plane_strain=axial) == pytest.approx(
            plane, rel=1e-3)
        assert strip_j(u, sigma, None, radius) < 0.98 * plane


def test_an_initial_stress_enters_as_its_eigenstrain():
    """C : eps + sigma_0 = C : (eps - eps*) with eps* = initial_stress_eigenstrain(sigma_0),
    the 3x3 components included (how the pull-off's residual stress enters J)."""
    msh, _, _ = edge_crack_strip(MPI.COMM_SELF, tip_size=0.5)
    u = fem.Function(fem.functionspace(msh, ("Lagrange", 2, (2,))))
    u.interpolate(lambda x: np.vstack([1e-3 * x[0] + 2e-3 * x[1], -5e-4 * x[0] * x[1] / UM]))
    initial = ufl.as_matrix([[30e6, -12e6, 0], [-12e6, 50e6, 0], [0, 0, -70e6]])
    direct = plane_strain_stress(u, LAMBDA, MU) + initial
    through = plane_strain_stress(u, LAMBDA, MU, initial_stress_eigenstrain(initial, LAMBDA, MU))
    difference = fem.assemble_scalar(fem.form(ufl.inner(direct - through, direct - through)
                                              * ufl.dx))
    size = fem.assemble_scalar(fem.form(ufl.inner(direct, direct) * ufl.dx))
    assert difference <= 1e-24 * size


# -- b. Hutchinson & Suo --------------------------------------------------------------------

def film_misfit_j(comm, radius_um, substrate_modulus=E, substrate_poisson=NU, misfit=-1e-3):
    """J at the tip of the debonded film with an isotropic misfit eigenstrain (cellwise:
    misfit in the film, 0 in the substrate), substrate bottom clamped, right face a
    symmetry plane."""
    msh, cell_tags, facet_tags = debonded_film(comm)
    field = field_by_tag(msh, cell_tags, {FILM_TAG: misfit})
    modulus = field_by_tag(msh, cell_tags, {FILM_TAG: E, SUBSTRATE_TAG: substrate_modulus})
    poisson = field_by_tag(msh, cell_tags, {FILM_TAG: NU, SUBSTRATE_TAG: substrate_poisson})
    lmbda, shear = lame(modulus, poisson)

    def held(V):
        return [(0, _facet_dofs(V.sub(0), facet_tags, 1)),
                (1, _facet_dofs(V.sub(1), facet_tags, 1)),
                (0, _facet_dofs(V.sub(0), facet_tags, 2))]

    u, sigma = solve_elastic(msh, held, lmbda, shear, eigenstrain=field)
    return [j_integral(u, sigma, field, (DEBOND * UM, SUBSTRATE * UM), (1.0, 0.0), r * UM,
                       cell_tags=cell_tags) for r in np.atleast_1d(radius_um)]


def hutchinson_suo(misfit=-1e-3):
    """G = (1 - nu^2) sigma^2 h / (2E), sigma = -E eps* / (1 - nu): the bonded film's
    in-plane stress (sigma_11 = sigma_33 in plane strain with eps_11 = 0 far ahead)."""
    sigma = -E * misfit / (1 - NU)
    return (1 - NU**2) * sigma**2 * FILM * UM / (2 * E)


@pytest.mark.parametrize("substrate", ["equal", "stiff"])
def test_debonded_film_gives_the_hutchinson_suo_steady_state(substrate):
    """A film (h) with an isotropic misfit eigenstrain eps* = -1e-3, debonded 10 h from the
    free edge along the interface with a substrate (3 h, bottom clamped), bonded 10 h ahead
    (symmetry plane), plane strain. Far ahead the film has eps_11 = eps_33 = 0, sigma_22 = 0:
    a biaxial sigma = -E eps* / (1 - nu) and W = (1 - nu) sigma^2 / E; far behind sigma_11 = 0,
    sigma_33 = (1 - nu) sigma, W = (1 - nu)^2 sigma^2 / (2E); the substrate is unstrained in
    both (clamped bottom), so the steady-state G = h (W_ahead - W_behind) holds for any
    substrate. The eigenstrain and the moduli jump across the interface, which is parallel
    to the crack: the terms (3), (4) vanish there. Equal constants, and a substrate 4 times
    stiffer (nu 0.25): within 3e-3 on radii h, 2 h, 2.9 h (measured: equal constants 6.3e-4,
    7.5e-4, 7.8e-4; the stiff substrate 1.9e-4, 6.2e-5, 2.5e-5)."""
    modulus, poisson = (E, NU) if substrate == "equal" else (4 * E, 0.25)
    values = film_misfit_j(MPI.COMM_WORLD, [1.0, 2.0, 2.9], modulus, poisson)
    for value in values:
        assert value == pytest.approx(hutchinson_suo(), rel=3e-3)


# -- c. path independence -------------------------------------------------------------------

THERMAL_SLOPE = 5e-3 / (STRIP_CRACK * UM)  # eps*: 0 at the crack mouth, 5e-3 at the tip


def linear_thermal(msh):
    """eps* = alpha dT(x) with a temperature rising linearly along the crack (UFL)."""
    return THERMAL_SLOPE * ufl.SpatialCoordinate(msh)[0]


def cellwise_thermal(msh):
    """The same field, cell by cell (DG0, interpolated at the cell midpoints)."""
    field = fem.Function(fem.functionspace(msh, ("DG", 0)))
    field.interpolate(lambda x: THERMAL_SLOPE * x[0])
    return field


@pytest.mark.parametrize("field", [linear_thermal, cellwise_thermal])
def test_j_is_path_independent_only_with_the_eigenstrain_term(field):
    """The edge-cracked strip in tension with a temperature rising along the crack direction
    (eps* = alpha dT, 5e-3 at the tip). A linear eps* in plane strain is compatible in the
    plane: with these boundaries it adds no in-plane stress, only sigma_33 = -E eps*(x), so
    J is the mechanical J (Tada). But W carries E eps*^2 / 2, which grows along x1: without
    the eigenstrain-gradient term (2) the domain integral picks up int W_,1 q dA, which grows
    with the domain. With it, J on radii 0.5, 1, 2 um agrees within 1 % (measured 0.05 %)
    and with Tada within 2 % (measured -0.3 %, as without the temperature); without it,
    0.957, 1.005, 1.509 times Tada: asserted to spread by more than 10 %.

    The cellwise (DG0) field, on a mesh of 0.5 um away from the tip, exercises the facet term
    (4) instead of (2): radii within 0.02 %, Tada +0.6 % (the DG0 field is not compatible
    in the plane: its cell-to-cell steps add in-plane stresses that vanish with the mesh:
    +2.4 % on the 1 um mesh, -0.03 % on 0.25 um); without (4): 0.964, 1.013, 1.517."""
    far_size = 0.5 if field is cellwise_thermal else 1.0
    u, sigma, eigenstrain = strip_under_tension(MPI.COMM_WORLD, field, far_size)
    radii = (0.5, 1.0, 2.0)
    with_term = np.array([strip_j(u, sigma, eigenstrain, r) for r in radii])
    without = np.array([strip_j(u, sigma, eigenstrain, r, eigenstrain_term=False)
                        for r in radii])
    assert np.ptp(with_term) <= 0.01 * with_term.mean()
    assert with_term.mean() == pytest.approx(tada_edge_crack_j(), rel=0.02)
    assert np.ptp(without) >= 0.10 * with_term.mean()


def _strip_with_a_material_boundary(stiffness_ratio, misfit, comm=MPI.COMM_WORLD):
    """The strip in tension with a material boundary at x = a + 1 um across the ligament:
    E and nu beyond it times stiffness_ratio (nu 0.25 if not 1), and an eigenstrain misfit
    there (0 before it). Returns u, the stress, the eigenstrain, the cell tags."""
    msh, cell_tags, facet_tags = edge_crack_strip(comm, boundary=STRIP_CRACK + 1.0)

    def cellwise(before, beyond):
        return field_by_tag(msh, cell_tags, {1: before, 2: beyond})

    modulus = cellwise(E, stiffness_ratio * E)
    poisson = cellwise(NU, NU if stiffness_ratio == 1 else 0.25)
    eigenstrain = cellwise(0.0, misfit)
    lmbda, shear = lame(modulus, poisson)

    def held(V):
        return [(1, _facet_dofs(V.sub(1), facet_tags, 2)),
                (0, _vertex_dofs(V.sub(0), msh, (STRIP_CRACK, 0.0)))]

    u, sigma = solve_elastic(msh, held, lmbda, shear, eigenstrain,
                             traction=(facet_tags, 3, (0.0, TENSION)))
    return u, sigma, eigenstrain, cell_tags


@pytest.mark.parametrize("misfit", [0.0, 2e-3])
def test_a_material_boundary_across_the_domain_needs_its_term(misfit):
    """A material 3 times stiffer 1 um ahead of the tip (the boundary crosses the crack line
    at right angles), with or without an eigenstrain of 2e-3 in it. The radius 0.5 um stays
    in the crack's material; 1.5 and 2.5 um cross the boundary. With the cell tags (term (3)
    on the boundary) J is path independent within 1 % (measured 0.05 %: the stiff material
    shields the tip, J = 0.372 and 1.572 times the homogeneous strip's); without, it grows
    with the domain by more than 10 % (measured 22 % and 6.5 %)."""
    u, sigma, eigenstrain, cell_tags = _strip_with_a_material_boundary(3.0, misfit)
    radii = (0.5, 1.5, 2.5)
    tagged = np.array([strip_j(u, sigma, eigenstrain, r, cell_tags=cell_tags) for r in radii])
    untagged = np.array([strip_j(u, sigma, eigenstrain, r) for r in radii])
    assert np.ptp(tagged) <= 0.01 * tagged.mean()
    assert tagged[0] == pytest.approx(untagged[0], rel=1e-12)
    assert untagged[2] - untagged[0] >= 0.05 * tagged.mean()


def test_an_eigenstrain_step_between_equal_materials_is_the_same_either_way():
    """Equal moduli, an eigenstrain step of 2e-3 across the boundary: the material-boundary
    term (3) and the eigenstrain-jump term (4) are the same there (for equal C and a
    continuous u, [[W]] - <t>.[[u_,1]] / m_1 = -<sigma> : [[eps*]], Eshelby's force on an
    eigenstrain step), so J with and without the tags agrees to round-off (measured: to the
    last digit), and is path independent (0.08 %: J = 1.740 times the homogeneous strip's)."""
    u, sigma, eigenstrain, cell_tags = _strip_with_a_material_boundary(1.0, 2e-3)
    radii = (0.5, 1.5, 2.5)
    tagged = np.array([strip_j(u, sigma, eigenstrain, r, cell_tags=cell_tags) for r in radii])
    untagged = np.array([strip_j(u, sigma, eigenstrain, r) for r in radii])
    np.testing.assert_allclose(tagged, untagged, rtol=1e-9)
    assert np.ptp(tagged) <= 0.01 * tagged.mean()


def test_j_around_a_cohesive_zone_is_the_hutchinson_suo_release_rate():
    """The cohesive film (solver/physics/cohesive.py: one displacement per body, the interface a
    cohesive zone, 150 MPa, G_c = 1 J/m^2, K = 1e18 Pa/m) of the Hutchinson-Suo test: film
    h = 1 um, substrate 3 h (clamped), pre-crack 10 h from the free edge, 20 h bonded ahead,
    loaded by a misfit to G = 0.8 G_c (the zone ahead of the pre-crack damaged to 0.985, not
    running). The cohesive crack has no singular tip: J over a domain with q = 1 over the
    zone (inner radius 2 um, radius 6 um) is the far-field release rate, the work of the
    cohesive tractions, and equals the closed form within 2 % (measured 0.2 %). With the
    interface's term (3) (cell tags) the zone's work is taken back out: the tip's J, small
    (asserted < 5 % of G, measured 1.4 %: the nodal cohesive tractions are not the bulk
    stress that (3) uses)."""
    elastic = "".join(f"[materials.{name}]\nyoungs_modulus = {E}\npoisson_ratio = {NU}\n"
                      "thermal_expansion = 0\n" for name in ("substrate", "film"))
    case = layers_case([("substrate", f"{SUBSTRATE} um"), ("film", f"{FILM} um")],
                       length=f"{DEBOND + BONDED} um", mesh_size="0.25 um", extra=elastic)
    emesh = build_mesh(case)
    misfit = cellwise_field(emesh, {"substrate": 0.0, "film": 1.0}, "misfit")
    law = CohesiveLaw(150e6, 150e6, 1.0, 1.0, 2.0, 1e18)
    problem = CohesiveProblem(emesh, case.materials, law, degree=2, eigenstrain=misfit)
    for body in ("foil", "layer"):
        problem.fix(body, 0, problem.facets("right"))
    for component in (0, 1):
        problem.fix("foil", component, problem.facets("bottom"))
    x = problem.nodes.coordinates[:, 0]
    problem.damage[x < DEBOND * UM - 1e-12] = 1.0
    ratio = 0.8  # G / G_c
    critical = np.sqrt(2 * E * 1.0 / ((1 - NU**2) * FILM * UM)) * (1 - NU) / E
    problem.advance(lambda value: setattr(problem.load_factor, "value", -value), 0.0,
                    critical * np.sqrt(ratio), max_cuts=4)
    u = cohesive_displacement(problem)
    eigenstrain = problem.load_factor * misfit
    sigma = plane_strain_stress(u, problem.lame_lambda, problem.shear_modulus, eigenstrain)
    options = dict(inner_radius=2 * UM, msh=emesh.mesh)
    tip = (DEBOND * UM, SUBSTRATE * UM)
    far = j_integral(u, sigma, eigenstrain, tip, (1.0, 0.0), 6 * UM, **options)
    near = j_integral(u, sigma, eigenstrain, tip, (1.0, 0.0), 6 * UM,
                      cell_tags=emesh.cell_tags, **options)
    assert far == pytest.approx(hutchinson_suo(-critical * np.sqrt(ratio)), rel=0.02)
    assert abs(near) < 0.05 * far


# -- d. parallel ----------------------------------------------------------------------------

@pytest.mark.mpi
def test_j_is_the_same_on_one_and_two_ranks():
    """The debonded film (material tags, cellwise eigenstrain), the strip with a cellwise
    thermal gradient (the facet term (4)) and the strip with a stiffer, misfitting material
    ahead (the term (3)) on COMM_WORLD (2 ranks) and on COMM_SELF (the same Gmsh mesh, one
    rank): equal to 1e-8 relative (measured 3e-13, 7e-12, 4e-14)."""
    world = MPI.COMM_WORLD
    film = film_misfit_j(world, 2.0)[0]
    film_serial = film_misfit_j(MPI.COMM_SELF, 2.0)[0]
    assert film == pytest.approx(film_serial, rel=1e-8)
    strip = strip_j(*strip_under_tension(world, cellwise_thermal), 1.0)
    strip_serial = strip_j(*strip_under_tension(MPI.COMM_SELF, cellwise_thermal), 1.0)
    assert strip == pytest.approx(strip_serial, rel=1e-8)
    values = []
    for comm in (world, MPI.COMM_SELF):
        u, sigma, eigenstrain, cell_tags = _strip_with_a_material_boundary(3.0, 2e-3, comm)
        values.append(strip_j(u, sigma, eigenstrain, 2.5, cell_tags=cell_tags))
    assert values[0] == pytest.approx(values[1], rel=1e-8)
