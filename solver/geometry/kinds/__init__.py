"""The geometry kinds, one module each: its [geometry] schema, its builder call and its
traits (`KIND`, a solver.geometry.kind.GeometryKind), listed in solver/geometry/registry.py."""
