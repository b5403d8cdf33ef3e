"""The J-integral of a 2D crack tip (plane strain or generalized plane strain), as a domain
integral, with the eigenstrain-gradient term that keeps it path independent under a thermal
or swelling load.

The equivalent domain integral (Li, Shih & Needleman 1985; Shih, Moran & Nakamura 1986), for
a tip at x_tip that advances along the unit vector e (x1 below is the coordinate along e; the
crack faces lie behind the tip, parallel to e and traction free inside the domain):

    J = int_A (sigma_ij u_i,1 - W delta_1j) q,j dA                              (1)
      + int_A sigma_ij eps*_ij,1 q dA                                             (2)
      + int_S (<t_i> [[u_i,1]] - [[W]] m_1) q ds                                  (3)
      + int_F <sigma_ij> [[eps*_ij]] m_1 q ds                                     (4)

W = 1/2 sigma : (eps - eps*) with the 3x3 stress, strain and eigenstrain (in plane strain
eps_33 = 0, in generalized plane strain the uniform e_zz), so sigma_33 eps*_33 counts. q is
analytical: 1 inside an inner radius R_i (default 0), (1 - s^2)^2 with
s = (r - R_i) / (R - R_i) out to the radius R around the tip, 0 outside; it is C1 at R, so
cells cut by the circle are integrated to the quadrature's accuracy, and the domain does not
depend on the mesh.

Why (2): div_j (sigma_ij u_i,1 - W delta_1j) = -sigma : eps*_,1 in a homogeneous material
with equilibrium, so without (2) the contour integral changes with the contour wherever the
eigenstrain varies along e. (3) is the same divergence where it is a surface delta: the
material boundaries S (facets between cells of different tags, m the normal from the '-' to
the '+' cell, t = sigma m the traction, continuous; [[.]] = (+) - (-)). Because u is
continuous, [[grad u]] = a (x) m, so [[u_,1]] = a m_1: on a boundary parallel to e (an
interface crack along the interface) both parts of (3) vanish although W, sigma_11 and the
eigenstrain jump across it; (3) counts only where a material boundary crosses the domain at
an angle to e. (4) is (2) for an eigenstrain that jumps between cells of one material (a
cellwise field approximating a gradient); it is zero for a continuous eigenstrain.

A cohesive crack (solver/physics/cohesive.py: one displacement per body, cohesive_displacement
below) has no singular tip: its faces carry tractions t inside the domain, and (1) + (2)
give the far-field J, which equals the work of the cohesive tractions -int t . delta_,1 q ds
(Rice 1968; delta the opening, e along the interface). Leave the interface out of the term
(3) (cell_tags=None, or tags that do not differ across it): with it, (3) adds
int t . delta_,1 q ds back and the result is the tip's J, zero for a cohesive zone. With
inner_radius past the process zone, q = 1 over it.

Signs: J > 0 is the energy released per unit crack advance along e, per unit depth (J/m^2).
The direction e points from the crack faces into the ligament. The stress is the total
stress of the elastic body, sigma = C : (eps - eps*); an initial stress sigma_0 enters as the
eigenstrain -C^-1 : sigma_0 (initial_stress_eigenstrain). The domain must not
reach a loaded or free boundary that is not parallel to e (a free edge, a symmetry plane
across the crack), nor another crack tip.

Parallel: each rank integrates its owned cells and facets, and the ranks' sums are added
(allreduce). The facet terms (3), (4) need both cells of every interior facet on its rank
(shared_facet ghosting, as solver.geometry.mesh.build_mesh does) where they are not zero.
"""

import logging

import numpy as np
import ufl
from dolfinx import fem, mesh
from mpi4py import MPI

from solver.materials.elasticity import as_3d, hooke, in_plane
from solver.numerics import compat
from solver.numerics.fields import tag_field

logger = logging.getLogger(__name__)

_DOMAIN = 1
_MATERIAL_BOUNDARY, _OTHER_FACETS = 1, 2


def plane_strain_stress(u, lame_lambda, shear_modulus, eigenstrain=None,
                        out_of_plane_strain=0.0):
    """The 3x3 stress of a 2D displacement in plane strain (e_zz = 0) or generalized plane
    strain (e_zz = out_of_plane_strain): C : (eps - eps*), eigenstrain a scalar (isotropic)
    or a 3x3 tensor (UFL or Function), None for none."""
    strain = strain_3d(u, out_of_plane_strain)
    if eigenstrain is not None:
        strain = strain - eigenstrain_3d(eigenstrain)
    return hooke(strain, lame_lambda, shear_modulus)


def strain_3d(u, out_of_plane_strain=0.0):
    """The 3x3 small strain of a 2D displacement with a uniform out-of-plane strain."""
    return as_3d(ufl.sym(ufl.grad(u)), out_of_plane_strain)


def eigenstrain_3d(eigenstrain):
    """A scalar (isotropic) eigenstrain as eps* I (3x3); a 3x3 tensor as it is."""
    if eigenstrain is None:
        return ufl.as_matrix(np.zeros((3, 3)).tolist())
    if ufl.as_ufl(eigenstrain).ufl_shape == ():
        return eigenstrain * ufl.Identity(3)
    return eigenstrain


def initial_stress_eigenstrain(initial_stress, lame_lambda, shear_modulus):
    """The eigenstrain -C^-1 : sigma_0 (3x3) that gives the initial stress sigma_0 (3x3):
    C : eps + sigma_0 = C : (eps - eps*)."""
    trace = ufl.tr(initial_stress)
    return -(initial_stress - lame_lambda / (3 * lame_lambda + 2 * shear_modulus) * trace
             * ufl.Identity(3)) / (2 * shear_modulus)


def cohesive_displacement(problem):
    """The displacement of a solver.physics.cohesive.CohesiveProblem as one UFL field: u_foil in the
    foil's cells, u_layer elsewhere (discontinuous across the cohesive interface)."""
    return problem.body_displacement()


def j_integral(u, stress, eigenstrain, tip, direction, radius, cell_tags=None,
               out_of_plane_strain=0.0, inner_radius=0.0, eigenstrain_term=True,
               quadrature_degree=None, msh=None) -> float:
    """J of the crack tip `tip` (x, y) advancing along `direction`, over the disc of `radius`
    (m) around it, in J/m^2 (per unit depth), the same on every rank.

    u: the 2D displacement (fem.Function, or a UFL vector with msh given); stress: its 3x3
    total stress (UFL, e.g. plane_strain_stress or ThermoElasticProblem.stress_tensor_3d());
    eigenstrain: scalar (isotropic) or 3x3, UFL or Function (DG0 included), a Constant, or
    None; cell_tags: the material
    MeshTags, whose boundaries get the term (3) (None: one material, or material boundaries
    only parallel to the crack); out_of_plane_strain: e_zz of generalized plane strain
    (float or Constant); inner_radius: q = 1 out to it. eigenstrain_term=False drops (2)
    and (4) (only to show what they do). quadrature_degree: default 2 p + 4 for u of degree
    p (8 for a UFL u).
    """
    if isinstance(u, fem.Function):
        msh = u.function_space.mesh
        degree = u.function_space.ufl_element().degree
    else:
        degree = 2
    if msh is None or msh.geometry.dim != 2:
        raise ValueError("j_integral: u must be a fem.Function, or msh given, on a 2D mesh")
    if not 0 <= inner_radius < radius:
        raise ValueError("j_integral: need 0 <= inner_radius < radius")
    direction = np.asarray(direction, dtype=float)[:2]
    direction = direction / np.linalg.norm(direction)
    tip = np.asarray(tip, dtype=float)[:2]
    if quadrature_degree is None:
        quadrature_degree = 2 * degree + 4
    metadata = {"quadrature_degree": quadrature_degree}

    e = ufl.as_vector(direction.tolist())
    offset = ufl.SpatialCoordinate(msh) - ufl.as_vector(tip.tolist())
    q = _weight(ufl.dot(offset, offset), inner_radius, radius)

    eps_star = eigenstrain_3d(eigenstrain)
    stress_2d = in_plane(stress)
    energy = 0.5 * ufl.inner(stress, strain_3d(u, out_of_plane_strain) - eps_star)
    gradient_along = ufl.dot(ufl.grad(u), e)  # u_i,1
    flux = ufl.dot(gradient_along, stress_2d) - energy * e  # sigma_ij u_i,1 - W delta_1j

    cells, facet_tags = _integration_entities(msh, tip, radius, cell_tags)
    dx = ufl.Measure("dx", domain=msh, subdomain_data=cells, metadata=metadata)(_DOMAIN)
    integrand = ufl.dot(flux, ufl.grad(q)) * dx
    if eigenstrain is not None and eigenstrain_term:
        integrand += ufl.inner(stress, ufl.dot(ufl.grad(eps_star), e)) * q * dx
    facets = ufl.Measure("dS", domain=msh, subdomain_data=facet_tags, metadata=metadata)
    m = ufl.FacetNormal(msh)("-")  # from the '-' cell into the '+' cell
    along = ufl.dot(m, e)  # m_1
    if cell_tags is not None:
        traction = ufl.dot(ufl.avg(stress_2d), m)
        integrand += (ufl.dot(traction, gradient_along("+") - gradient_along("-"))
                      - (energy("+") - energy("-")) * along) * ufl.avg(q) \
            * facets(_MATERIAL_BOUNDARY)
    if eigenstrain is not None and eigenstrain_term:
        integrand += ufl.inner(ufl.avg(stress), eps_star("+") - eps_star("-")) * along \
            * ufl.avg(q) * facets(_OTHER_FACETS)
    value = msh.comm.allreduce(fem.assemble_scalar(fem.form(integrand)), op=MPI.SUM)
    logger.debug("J at (%.4g, %.4g) m, radius %.4g m: %.6g J/m^2", *tip, radius, value)
    return float(value)


def _weight(distance2, inner_radius, radius):
    """q at the squared distance from the tip: 1 to inner_radius, then (1 - s^2)^2."""
    if inner_radius == 0:  # no square root: its derivative is singular at the tip
        s2 = distance2 / radius**2
    else:
        s2 = (ufl.max_value(ufl.sqrt(distance2) - inner_radius, 0.0)
              / (radius - inner_radius))**2
    return ufl.conditional(ufl.lt(s2, 1.0), (1 - s2)**2, 0.0)


def _integration_entities(msh, tip, radius, cell_tags):
    """MeshTags of the cells that may reach into the disc (every cell whose bounding circle
    does), and of their interior facets: on a material boundary (tag 1: the cells' material
    tags differ) or not (tag 2). q is zero outside the disc, so more cells change nothing."""
    tdim = msh.topology.dim
    local_cells = msh.topology.index_map(tdim).size_local + msh.topology.index_map(tdim).num_ghosts
    nodes = msh.geometry.x[compat.cell_geometry_nodes(msh)[:local_cells], :2]
    centres = nodes.mean(axis=1)
    sizes = np.linalg.norm(nodes - centres[:, None, :], axis=2).max(axis=1)
    near = np.linalg.norm(centres - tip, axis=1) <= radius + sizes
    chosen = np.flatnonzero(near).astype(np.int32)
    cells = mesh.meshtags(msh, tdim, chosen, np.full(len(chosen), _DOMAIN, np.int32))

    msh.topology.create_connectivity(tdim, tdim - 1)
    msh.topology.create_connectivity(tdim - 1, tdim)
    cell_facets = msh.topology.connectivity(tdim, tdim - 1)
    facet_cells = msh.topology.connectivity(tdim - 1, tdim)
    candidates = np.unique(np.concatenate(
        [cell_facets.links(c) for c in chosen] or [np.zeros(0, np.int32)]))
    interior = np.array([len(facet_cells.links(f)) == 2 for f in candidates], dtype=bool)
    candidates = candidates[interior]
    values = np.full(len(candidates), _OTHER_FACETS, np.int32)
    if cell_tags is not None:
        material = _cellwise_tags(msh, cell_tags)
        pairs = np.array([facet_cells.links(f) for f in candidates], np.int32).reshape(-1, 2)
        values[material[pairs[:, 0]] != material[pairs[:, 1]]] = _MATERIAL_BOUNDARY
    facets = mesh.meshtags(msh, tdim - 1, candidates.astype(np.int32), values)
    return cells, facets


def _cellwise_tags(msh, cell_tags) -> np.ndarray:
    """The material tag of every local cell, ghosts included (from their owners)."""
    field = tag_field(msh, cell_tags, untagged=-1.0)
    return field.x.array[field.function_space.dofmap.list[:, 0]]
