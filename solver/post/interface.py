"""Tractions along material interfaces and the quadratic delamination-risk index.

The stress is discontinuous across an interface; the traction sigma.n is not (in the exact
solution), so it is evaluated at each interface facet's midpoint from both adjacent cells
and averaged. Normals point from the lower (foil) material into the upper (layer) one, so
a positive normal traction is tension (opening). The maximum at a node next to a sharp
bimaterial corner is mesh-dependent (a singularity), so the risk index is computed from
tractions averaged over `averaging_length` along the interface, which converge.
"""

from dataclasses import dataclass

import numpy as np
from dolfinx import fem, mesh

from solver.numerics import compat


@dataclass
class InterfaceTractions:
    """Per-facet interface data, gathered on rank 0 (empty arrays on other ranks)."""

    name: str
    midpoints: np.ndarray  # (n, 3)
    normals: np.ndarray  # (n, 3), foil -> layer
    sizes: np.ndarray  # facet length (2D) or area (3D)
    chain: np.ndarray  # index of the connected curve each facet belongs to (2D)
    arc_length: np.ndarray  # along its curve (2D), NaN in 3D
    normal_traction: np.ndarray
    shear_traction: np.ndarray  # signed along the tangent (2D), magnitude (3D)
    normal_traction_averaged: np.ndarray
    shear_traction_averaged: np.ndarray
    risk: np.ndarray

    def summary(self) -> dict:
        if len(self.sizes) == 0:
            return {}
        critical = self.sizes[self.risk >= 1].sum() / self.sizes.sum()
        return {
            "max_normal_traction": float(self.normal_traction.max()),
            "max_shear_traction": float(np.abs(self.shear_traction).max()),
            "max_normal_traction_averaged": float(self.normal_traction_averaged.max()),
            "max_shear_traction_averaged": float(np.abs(self.shear_traction_averaged).max()),
            "max_risk": float(self.risk.max()),
            "critical_fraction": float(critical),
            "size": float(self.sizes.sum()),
        }


# The quantities of InterfaceTractions.summary whose peak over a history is reported
PEAK_QUANTITIES = ("max_normal_traction_averaged", "max_shear_traction_averaged", "max_risk")


def track_peaks(peaks: dict, values: dict, **when):
    """Keep in `peaks`, per quantity, the largest value of the summaries `values` seen so
    far and when it occurred: {"value": ..., **when}."""
    for quantity in PEAK_QUANTITIES:
        value = values.get(quantity)
        if value is not None and value >= peaks.get(quantity, {}).get("value", -np.inf):
            peaks[quantity] = {"value": value, **when}


def risk_index(normal, shear, normal_strength, shear_strength):
    """Quadratic traction criterion; only tension (Macaulay bracket) opens the interface."""
    return (np.maximum(normal, 0.0) / normal_strength) ** 2 + (shear / shear_strength) ** 2


class InterfaceProbe:
    """Locates the facets of every interface once; evaluates tractions for any stress."""

    def __init__(self, emesh):
        msh = emesh.mesh
        self.comm = msh.comm
        tdim = msh.topology.dim
        fdim = tdim - 1
        msh.topology.create_connectivity(fdim, tdim)
        facet_to_cell = msh.topology.connectivity(fdim, tdim)
        owned_facets = msh.topology.index_map(fdim).size_local
        cell_tag_of = np.full(msh.topology.index_map(tdim).size_local
                              + msh.topology.index_map(tdim).num_ghosts, -1, dtype=np.int64)
        cell_tag_of[emesh.cell_tags.indices] = emesh.cell_tags.values
        self.interfaces = {}
        for name, (facet_tag, lower_tag, upper_tag) in emesh.geometry.interfaces.items():
            facets = emesh.facet_tags.indices[emesh.facet_tags.values == facet_tag]
            facets = facets[facets < owned_facets]
            lower, upper = [], []
            for facet in facets:
                cells = facet_to_cell.links(facet)
                tags = cell_tag_of[cells]
                lower.append(cells[tags == lower_tag][0])
                upper.append(cells[tags == upper_tag][0])
            lower, upper = np.array(lower, np.int32), np.array(upper, np.int32)
            geometry_nodes = msh.geometry.x[compat.entities_to_geometry(msh, fdim, facets)]
            # A facet's geometry nodes are its vertices, then (second-order geometry) the
            # nodes on its edges. On a curved 2D facet the middle node is the curve's midpoint,
            # where the tangent is exactly the chord's.
            nodes = geometry_nodes[:, :tdim]
            curved = tdim == 2 and geometry_nodes.shape[1] == 3
            midpoints = (geometry_nodes[:, 2] if curved else nodes.mean(axis=1)) if len(
                facets) else np.zeros((0, 3))
            normals, sizes = _facet_normals(nodes, tdim)
            towards_upper = (mesh.compute_midpoints(msh, tdim, upper)
                             - mesh.compute_midpoints(msh, tdim, lower)) if len(facets) else 0
            flip = np.sum(normals * towards_upper, axis=1) < 0 if len(facets) else []
            normals[flip] *= -1
            self.interfaces[name] = (midpoints, normals, sizes, lower, upper, nodes)

    def tractions(self, stress: fem.Function, interface_settings, dim) -> dict:
        """Interface tractions for a cell-wise (DG) 3x3 stress field, gathered on rank 0."""
        results = {}
        for name, (midpoints, normals, sizes, lower, upper, nodes) in self.interfaces.items():
            if len(sizes):
                sigma = 0.5 * (stress.eval(midpoints, lower) + stress.eval(midpoints, upper))
                sigma = sigma.reshape(-1, 3, 3)
                traction = np.einsum("nij,nj->ni", sigma, normals)
            else:
                traction = np.zeros((0, 3))
            gathered = self.comm.gather((midpoints, normals, sizes, traction, nodes), root=0)
            if self.comm.rank != 0:
                results[name] = None
                continue
            midpoints_all, normals_all, sizes_all, traction_all, nodes_all = (
                np.concatenate(parts) for parts in zip(*gathered, strict=True))
            results[name] = _interface_tractions(name, midpoints_all, normals_all, sizes_all,
                                                 traction_all, nodes_all, dim,
                                                 interface_settings)
        return results


def _facet_normals(nodes, tdim):
    if len(nodes) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    if tdim == 2:
        tangent = nodes[:, 1] - nodes[:, 0]
        sizes = np.linalg.norm(tangent, axis=1)
        normals = np.column_stack([tangent[:, 1], -tangent[:, 0], np.zeros(len(nodes))])
        return normals / sizes[:, None], sizes
    cross = np.cross(nodes[:, 1] - nodes[:, 0], nodes[:, 2] - nodes[:, 0])
    sizes = 0.5 * np.linalg.norm(cross, axis=1)
    return cross / (2 * sizes[:, None]), sizes


def _chains(nodes):
    """Order 2D interface facets into connected curves: (chain index, order, arc length)."""
    n = len(nodes)
    scale = max(np.ptp(nodes.reshape(-1, 3), axis=0).max(), 1e-300)
    keys = np.round(nodes[:, :, :2] / scale * 1e9).astype(np.int64)
    vertex_ids = np.unique(keys.reshape(-1, 2), axis=0, return_inverse=True)[1].reshape(n, 2)
    facets_at = {}
    for facet, (a, b) in enumerate(vertex_ids):
        facets_at.setdefault(a, []).append(facet)
        facets_at.setdefault(b, []).append(facet)
    chain = np.full(n, -1)
    order = []
    arc = np.zeros(n)
    lengths = np.linalg.norm(nodes[:, 1] - nodes[:, 0], axis=1)
    chain_id = 0
    while (chain < 0).any():
        remaining = np.flatnonzero(chain < 0)
        # start from an open end (a vertex of one facet) if there is one, leftmost first
        ends = [f for f in remaining
                if any(len(facets_at[v]) == 1 for v in vertex_ids[f])]
        start = min(ends or list(remaining), key=lambda f: tuple(nodes[f].mean(axis=0)[:2]))
        a, b = vertex_ids[start]
        vertex = a if len(facets_at[a]) == 1 else b  # walk away from the open end
        facet, position = start, 0.0
        while facet is not None and chain[facet] < 0:
            chain[facet] = chain_id
            order.append(facet)
            arc[facet] = position + lengths[facet] / 2
            position += lengths[facet]
            a, b = vertex_ids[facet]
            vertex = b if vertex == a else a
            following = [f for f in facets_at[vertex] if chain[f] < 0]
            facet = following[0] if following else None
        chain_id += 1
    return chain, np.array(order), arc


def _moving_average(values, positions, weights, window):
    """Average of values over |position - p| <= window/2, weighted by facet size."""
    order = np.argsort(positions)
    p, v, w = positions[order], values[order], weights[order]
    cumulative_vw = np.concatenate([[0.0], np.cumsum(v * w)])
    cumulative_w = np.concatenate([[0.0], np.cumsum(w)])
    lo = np.searchsorted(p, p - window / 2, side="left")
    hi = np.searchsorted(p, p + window / 2, side="right")
    averaged = np.empty_like(v)
    averaged[order] = ((cumulative_vw[hi] - cumulative_vw[lo])
                       / (cumulative_w[hi] - cumulative_w[lo]))
    return averaged


def _interface_tractions(name, midpoints, normals, sizes, traction, nodes, dim, settings):
    normal_traction = np.einsum("ni,ni->n", traction, normals)
    shear_vector = traction - normal_traction[:, None] * normals
    window = settings.averaging_length
    if dim == 2:
        chain, order, arc = _chains(nodes)
        tangents = np.column_stack([normals[:, 1], -normals[:, 0], np.zeros(len(normals))])
        shear = np.einsum("ni,ni->n", shear_vector, tangents)
        normal_avg, shear_avg = np.empty_like(normal_traction), np.empty_like(shear)
        for c in np.unique(chain):
            on_chain = chain == c
            normal_avg[on_chain] = _moving_average(normal_traction[on_chain], arc[on_chain],
                                                   sizes[on_chain], window)
            shear_avg[on_chain] = _moving_average(shear[on_chain], arc[on_chain],
                                                  sizes[on_chain], window)
    else:
        order = np.lexsort(midpoints.T[::-1])
        chain, arc = np.zeros(len(sizes), int), np.full(len(sizes), np.nan)
        shear = np.linalg.norm(shear_vector, axis=1)
        normal_avg, shear_avg = _neighbourhood_average(
            midpoints, sizes, np.column_stack([normal_traction, shear]), window).T
    risk = risk_index(normal_avg, shear_avg, settings.normal_strength, settings.shear_strength)
    return InterfaceTractions(name, midpoints[order], normals[order], sizes[order],
                              chain[order], arc[order], normal_traction[order], shear[order],
                              normal_avg[order], shear_avg[order], risk[order])


# Facets whose neighbourhoods are found at once: every facet of a fine interface has about
# a thousand within the window (the 1M-DOF P1 cool-down: 1,200 on each of its 90,046
# facets, 54M pairs), so that all pairs at once took about 6 GB, more than the rest of the
# run; a block of 4,096 holds about 5M pairs, 120 MB
NEIGHBOURHOOD_BLOCK = 4096


def _neighbourhood_average(points, weights, values, window):
    """Size-weighted average over the facets within window/2 of each facet (3D surfaces);
    the pairs found by a k-d tree, so that the cost grows with the facets, not their square
    (1.3 s for 2 x 8,000 facets with all distances; the 1M-DOF cool-down has 4 times more),
    block by block of facets, so that the memory does not grow with them."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    averaged = np.empty_like(values)
    for start in range(0, len(points), NEIGHBOURHOOD_BLOCK):
        block = points[start:start + NEIGHBOURHOOD_BLOCK]
        # every pair (i in the block, j anywhere) within window/2, i = j included
        pairs = cKDTree(block).sparse_distance_matrix(tree, window / 2, output_type="ndarray")
        rows, columns = pairs["i"], pairs["j"]
        near = weights[columns]
        total = np.bincount(rows, weights=near, minlength=len(block))
        for k in range(values.shape[1]):
            averaged[start:start + len(block), k] = np.bincount(
                rows, weights=near * values[columns, k], minlength=len(block)) / total
    return averaged
