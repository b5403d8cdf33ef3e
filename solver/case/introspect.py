"""Reading the schema's annotations: what a key expects, the members of a tagged union.

Shared by the error messages (solver.case.loading) and the keys table
(solver.case.keys_doc), so that both describe a key the same way.
"""

import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Tag

from solver.case.units import KINDS, SIQuantity


def unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The annotation without Annotated and `| None`, and the Annotated metadata."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata.extend(extra)
        elif is_union(annotation) and type(None) in typing.get_args(annotation):
            # `X | None`; the schema's only optional union of several types is a property
            # that may be a temperature table, described by its SIQuantity metadata
            rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return annotation, metadata


def is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def members_by_tag(union: Any, discriminator: str | None) -> dict[str, type[BaseModel]]:
    """The models of a tagged union by tag: a Tag annotation, or the discriminator field."""
    members = {}
    for member in typing.get_args(union):
        model, metadata = unwrap(member)
        tags = [item.tag for item in metadata if isinstance(item, Tag)]
        if not tags and discriminator:
            tags = list(typing.get_args(model.model_fields[discriminator].annotation))
        members.update(dict.fromkeys(tags, model))
    return members



SHOWN_LENGTH = 80  # a value quoted in a message longer than this is cut: messages are one line


def show(value: Any) -> str:
    """A value as a message quotes it, cut to SHOWN_LENGTH characters."""
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN_LENGTH else text[:SHOWN_LENGTH] + " ..."


def expectation(annotation: Any, metadata: list[Any]) -> str:
    """What a key expects, as a user reads it: "a length (e.g. '2 um')", "2 or 3", ..."""
    for item in metadata:
        if isinstance(item, SIQuantity) and item.kind is None:  # a number (or its table)
            return "a number"
        if isinstance(item, SIQuantity):
            kind = KINDS[item.kind]
            adjective = "positive " if item.positive else ""
            return f"a {adjective}{kind.noun} (e.g. '{kind.example}')"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(show(value) for value in typing.get_args(annotation))
    if is_union(annotation):
        return f"a table with kind = {' or '.join(map(show, members_by_tag(annotation, 'kind')))}"
    if is_model(annotation) or typing.get_origin(annotation) is dict:
        return "a table"
    if typing.get_origin(annotation) in (list, tuple):
        return "a list"
    names = {str: "a string", float: "a number", int: "an integer", bool: "true or false"}
    return names.get(annotation, "a value")

