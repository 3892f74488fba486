"""A small JSON Schema validator for the subset suites use: ``type`` (one or a list),
``properties``, ``required``, ``items``, ``enum``, ``const`` and ``additionalProperties``
(a boolean or a schema). Other keywords are ignored, as JSON Schema ignores unknown ones.
"""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name not in _TYPES:
        return True
    if isinstance(value, bool) and name not in ("boolean",):
        return False  # JSON booleans are not numbers
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema``, as "path: problem" lines; empty when valid."""
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{path}: no value is allowed here"]
    if not isinstance(schema, dict):
        return [f"{path}: the schema is not an object"]
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, str(t)) for t in names):
            return [f"{path}: expected {' or '.join(map(str, names))}, got {_json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and not any(_equal(value, e) for e in schema["enum"]):
        errors.append(f"{path}: {value!r} is not one of {schema['enum']!r}")
    if "const" in schema and not _equal(value, schema["const"]):
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, dict):
        errors += _object(value, schema, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict | bool):
        for i, element in enumerate(value):
            errors += validate(element, schema["items"], f"{path}[{i}]")
    return errors


def _object(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    errors = [f"{path}: {name!r} is required" for name in required if name not in value]
    extra = schema.get("additionalProperties", True)
    for name, element in value.items():
        if name in properties:
            errors += validate(element, properties[name], f"{path}.{name}")
        elif extra is False:
            errors.append(f"{path}: {name!r} is not allowed")
        elif isinstance(extra, dict):
            errors += validate(element, extra, f"{path}.{name}")
    return errors


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ, 1 and 1.0 do not."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is_type(value, name):
            return name
    return type(value).__name__
