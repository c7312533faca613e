"""``TypedDict`` definitions from pydantic models, for the Python client: it reads the
server's JSON as plain dicts, typed by these, so the shapes are declared once (in
``ringfence.wire``) for the server, the browser (``ringfence.jsdoc``) and the client.

Only what the wire models use is supported: objects, strings, numbers, booleans,
arrays, string constants and enums, nullable fields, and references to other models
(each of which must be given a name). Anything else raises, so a new kind of field
cannot slip through as ``Any``. The server writes every field of a response, so
every key is required.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

Schema = Mapping[str, Any]


def typeddicts(models: Sequence[tuple[str, type[BaseModel]]]) -> str:
    """A ``TypedDict`` per model, named as given, in the order given. A model may refer
    only to models named in ``models``."""
    names = {model.__name__: name for name, model in models}
    out = []
    for name, model in models:
        schema = model.model_json_schema(by_alias=True, mode="serialization")
        for ref in schema.get("$defs", {}):
            if ref not in names:
                raise ValueError(f"{name} refers to {ref}, which is given no name")
        out.append(_typeddict(name, schema, names))
    return "\n\n".join(out)


def _typeddict(name: str, schema: Schema, names: Mapping[str, str]) -> str:
    if schema.get("type") != "object" or "properties" not in schema:
        raise ValueError(f"{name}: only object models become TypedDicts")
    lines = [f"class {name}(TypedDict):"]
    text = " ".join(str(schema.get("description", "")).split())
    if text:
        wrapped = textwrap.wrap(text, 84, break_on_hyphens=False)
        lines += [f'    """{wrapped[0]}', *(f"    {line}" for line in wrapped[1:])]
        lines[-1] += '"""'
        lines.append("")
    for prop, sub in schema["properties"].items():
        if not prop.isidentifier():
            raise ValueError(f"{name}.{prop}: not a Python name")
        lines.append(f"    {prop}: {_type(sub, names)}")
    return "\n".join(lines) + "\n"


def _type(schema: Schema, names: Mapping[str, str]) -> str:
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return names[ref]
    if "const" in schema:
        return f"Literal[{json.dumps(schema['const'])}]"
    if "enum" in schema:
        return "Literal[" + ", ".join(json.dumps(value) for value in schema["enum"]) + "]"
    if "anyOf" in schema:
        return " | ".join(_type(option, names) for option in schema["anyOf"])
    kind = schema.get("type")
    simple = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
    if kind in simple:
        return simple[kind]
    if kind == "null":
        return "None"
    if kind == "array":
        return f"list[{_type(schema['items'], names)}]"
    raise ValueError(f"no Python type for {schema}")
