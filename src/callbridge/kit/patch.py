"""Partial updates (PATCH): a field left out keeps its value; ``null`` is accepted only
where the created object may hold no value, and refused naming the field elsewhere."""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, TypeAdapter, ValidationError, ValidationInfo, field_validator

NULL_MESSAGE = "must not be null: leave the field out to keep its value"


@cache
def _nullable(create: type[BaseModel]) -> frozenset[str]:
    names = set()
    for name, field in create.model_fields.items():
        if field.annotation is None:
            continue
        try:
            TypeAdapter[Any](field.annotation).validate_python(None)
        except ValidationError:
            continue
        names.add(name)
    return frozenset(names)


def refuse_null(value: Any, info: ValidationInfo, create: type[BaseModel]) -> Any:
    """For a PATCH schema's ``field_validator("*", mode="before")``: ``null`` only for
    the fields of ``create`` (the POST schema) that accept it."""
    if value is None and info.field_name not in _nullable(create):
        raise ValueError(NULL_MESSAGE)
    return value


class Patch(BaseModel):
    """Base of a PATCH schema: ``create_schema`` names its POST schema, and ``null`` is
    refused (naming the field) for every field that one does not let be empty."""

    create_schema: ClassVar[type[BaseModel]]

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_null(value, info, cls.create_schema)
