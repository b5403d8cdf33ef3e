"""Geometry builders: conformal multi-material gmsh models with named physical groups.

Each builder runs on rank 0 on the current gmsh model (the caller initialises gmsh, adds the
model and finalises), builds in micrometres (build_from_file: in the file's units) and returns
a `BuiltGeometry` whose `length_scale` converts the mesh coordinates to metres.
"""

from meshes.built import BuiltGeometry
from meshes.collector import PlainProfile, build_flat_2d, build_plain_2d, build_rough_2d
from meshes.collector3d import build_flat_3d, build_plain_3d, build_recurved_3d, build_rough_3d
from meshes.imported import build_from_file
from meshes.layers import build_layers
from meshes.particles import build_particles, pack_particles
from meshes.recurved import RecurvedProfile, build_recurved_2d
from solver.errors import GeometryError

__all__ = [
    "BuiltGeometry",
    "GeometryError",
    "PlainProfile",
    "RecurvedProfile",
    "build_flat_2d",
    "build_flat_3d",
    "build_from_file",
    "build_layers",
    "build_particles",
    "build_plain_2d",
    "build_plain_3d",
    "build_recurved_2d",
    "build_recurved_3d",
    "build_rough_2d",
    "build_rough_3d",
    "pack_particles",
]
