"""JSDoc type definitions from pydantic models, for the browser client's type checker
(``tsc --checkJs``): the wire format is declared once, in Python, and the browser's
types are generated from its JSON Schema (see ``ringfence.generated``).

Only what the wire models use is supported: objects, strings, numbers, booleans,
arrays, string constants and enums, optional and nullable fields, and references to
other models. Anything else raises, so a new kind of field cannot slip through as
``any``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

Schema = Mapping[str, Any]


def typedefs(models: Sequence[tuple[str, type[BaseModel]]]) -> str:
    """A typedef per model (named as given) and per model it refers to (by class name),
    each once, in the order met."""
    # A model given a name of its own is referred to by that name everywhere.
    names = {model.__name__: name for name, model in models}
    out: dict[str, str] = {}
    for name, model in models:
        schema = model.model_json_schema(by_alias=True, mode="validation")
        for def_name, definition in schema.get("$defs", {}).items():
            if def_name not in names:
                out.setdefault(def_name, _typedef(def_name, definition, names))
        out[name] = _typedef(name, schema, names)
    return "\n".join(out.values())


def _typedef(name: str, schema: Schema, names: Mapping[str, str]) -> str:
    if schema.get("type") != "object" or "properties" not in schema:
        raise ValueError(f"{name}: only object models become typedefs")
    lines = [*_description(schema), f"@typedef {{object}} {name}"]
    required = set(schema.get("required", ()))
    for prop, sub in schema["properties"].items():
        default_none = "default" in sub and sub["default"] is None
        optional = prop not in required and default_none
        # A field with a default is always written by the server: required to a reader.
        label = f"[{prop}]" if optional else prop
        kind = _type(sub, names)
        if sub.get("x-omitted-when-none"):
            # Left out rather than null: absent to a reader, never null.
            kind = _type({k: v for k, v in sub.items() if k != "anyOf"} | _not_null(sub), names)
        lines.append(f"@property {{{kind}}} {label}")
    return "/**\n" + "".join(f" * {line}".rstrip() + "\n" for line in lines) + " */\n"


def _not_null(schema: Schema) -> dict[str, Any]:
    """The schema of a nullable field without its null."""
    options = [option for option in schema.get("anyOf", ()) if option.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"cannot tell the non-null type of {schema}")
    return dict(options[0])


def _description(schema: Schema) -> list[str]:
    text = " ".join(str(schema.get("description", "")).replace("``", "`").split())
    return textwrap.wrap(text, 84, break_on_hyphens=False) if text else []


def _type(schema: Schema, names: Mapping[str, str]) -> str:
    if "$ref" in schema:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return names.get(ref, ref)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_type(option, names) for option in schema["anyOf"])
    kind = schema.get("type")
    if kind == "string":
        return "string"
    if kind in ("integer", "number"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "null":
        return "null"
    if kind == "array":
        item = _type(schema["items"], names)
        return f"({item})[]" if " | " in item else f"{item}[]"
    raise ValueError(f"no JSDoc type for {schema}")
