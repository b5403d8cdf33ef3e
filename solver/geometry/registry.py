"""The geometry kinds a case file may name, and the one place that maps a case to its kind.

Adding a kind: a module in solver/geometry/kinds/ with its schema, its builder call (a
builder of meshes/) and its traits (`KIND`), and one entry in `KINDS`. The order of `KINDS`
is the order the case file's messages and docs/case-keys.md list the kinds in.
"""

import functools
import operator
from typing import Annotated, Any

from pydantic import Field

from solver.geometry.kind import GeometryKind
from solver.geometry.kinds import flat, layers, particles, plain, recurved, rough, user_mesh

KINDS: tuple[GeometryKind, ...] = (
    layers.KIND,
    recurved.KIND,
    flat.KIND,
    plain.KIND,
    rough.KIND,
    particles.KIND,
    user_mesh.KIND,
)

_BY_SCHEMA = {kind.schema: kind for kind in KINDS}
_BY_NAME = {kind.name: kind for kind in KINDS}
if len(_BY_NAME) != len(KINDS):
    raise RuntimeError("solver.geometry.registry: two geometry kinds share a name")

# The [geometry] table: one of the kinds' schemas, chosen by its `kind` key.
GeometrySchema = Annotated[
    functools.reduce(operator.or_, (kind.schema for kind in KINDS)),
    Field(discriminator="kind"),
]


def geometry_kind(case: Any) -> GeometryKind:
    """The kind of `case.geometry` (a Case, or the CaseFile being validated)."""
    return _BY_SCHEMA[type(case.geometry)]


def kind_named(name: str) -> GeometryKind:
    """The kind a case file (or a result's summary) names."""
    return _BY_NAME[name]
