"""JSDoc generated from the wire models (ringfence.jsdoc): each kind of field becomes
the type a browser reads, and a field it cannot express is refused, not let through."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from ringfence.jsdoc import typedefs


class Inner(BaseModel):
    """A part."""

    n: int


class Sample(BaseModel):
    kind: Literal["sample"] = "sample"
    label: str
    count: Annotated[int, Field(ge=0)]
    ratio: float
    flag: bool = False
    tags: list[str]
    choice: Literal["a", "b"]
    maybe: str | None = None
    alias_me: str = Field(alias="aliasMe")
    left_out: str | None = Field(default=None, json_schema_extra={"x-omitted-when-none": True})
    inner: Inner
    inners: list[Inner]


def test_every_kind_of_field_becomes_its_browser_type() -> None:
    out = typedefs([("SampleEvent", Sample)])
    assert out.index("@typedef {object} Inner") < out.index("@typedef {object} SampleEvent")
    for line in [
        " * A part.",
        " * @property {number} n",
        ' * @property {"sample"} kind',  # a default is always written: required
        " * @property {string} label",
        " * @property {number} count",
        " * @property {number} ratio",
        " * @property {boolean} flag",
        " * @property {string[]} tags",
        ' * @property {"a" | "b"} choice',
        " * @property {string | null} [maybe]",
        " * @property {string} aliasMe",
        " * @property {Inner} inner",
        " * @property {Inner[]} inners",
    ]:
        assert line in out.splitlines(), line


def test_a_field_it_cannot_express_is_refused() -> None:
    class Odd(BaseModel):
        mapping: dict[str, int]

    with pytest.raises(ValueError, match="no JSDoc type"):
        typedefs([("Odd", Odd)])
