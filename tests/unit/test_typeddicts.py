"""TypedDicts generated from the wire models (ringfence.typeddicts), for the Python
client: each kind of field becomes the type the client reads, and what cannot be
expressed is refused rather than let through as Any."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from ringfence.typeddicts import typeddicts


class Inner(BaseModel):
    """A part."""

    n: int


class Sample(BaseModel):
    kind: Literal["sample"] = "sample"
    label: str
    count: Annotated[int, Field(ge=0)]
    ratio: float
    flag: bool = False
    when: datetime
    tags: list[str]
    choice: Literal["a", "b"]
    maybe: str | None = None
    inner: Inner
    inners: list[Inner]


def test_every_kind_of_field_becomes_its_python_type() -> None:
    out = typeddicts([("Part", Inner), ("Whole", Sample)])
    assert out.index("class Part(TypedDict):") < out.index("class Whole(TypedDict):")
    assert '    """A part."""' in out
    for line in [
        '    kind: Literal["sample"]',
        "    label: str",
        "    count: int",
        "    ratio: float",
        "    flag: bool",  # the server always writes it: required to a reader
        "    when: str",  # JSON has no dates
        "    tags: list[str]",
        '    choice: Literal["a", "b"]',
        "    maybe: str | None",
        "    inner: Part",  # the name it was given
        "    inners: list[Part]",
    ]:
        assert f"\n{line}\n" in out, line
    namespace: dict[str, object] = {}
    exec("from typing import Literal, TypedDict\n" + out, namespace)  # it is valid Python
    assert set(namespace["Whole"].__annotations__) == set(Sample.model_fields)  # type: ignore[attr-defined]


def test_a_model_referred_to_must_be_named() -> None:
    with pytest.raises(ValueError, match="refers to Inner"):
        typeddicts([("Whole", Sample)])


def test_what_it_cannot_express_is_refused() -> None:
    class Mapping(BaseModel):
        counts: dict[str, int]

    with pytest.raises(ValueError, match="no Python type"):
        typeddicts([("Mapping", Mapping)])
