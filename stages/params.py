"""Reading and validating a stage's section of params.yaml.

A stage declares its section as a schema: a mapping from key to `Field(type, default)`. Unknown
keys, missing required keys and values of the wrong type are reported as `GenBenchError` naming
the key, before the stage writes anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from genbench.errors import GenBenchError

REQUIRED = object()


@dataclass(frozen=True)
class Field:
    type: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None  # returns an error text, or None when valid
    help: str = ""


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or greater"


def fraction(value: Any) -> str | None:
    return None if 0 < value < 1 else "must lie strictly between 0 and 1"


def read_params_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise GenBenchError(f"params file {str(path)!r} not found; run from the project root or pass --params")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise GenBenchError(f"params file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise GenBenchError(f"params file {str(path)!r} must hold a mapping of sections")
    return data


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    return " or ".join("null" if x is type(None) else x.__name__ for x in types)


def validate_section(raw: Any, section: str, schema: dict[str, Field]) -> dict:
    """Return the section with defaults filled in, or raise GenBenchError naming the bad key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise GenBenchError(f"params '{section}' must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise GenBenchError(
            f"params key '{section}.{unknown[0]}' does not exist; known keys of '{section}': {', '.join(schema)}"
        )
    out = {}
    for key, field in schema.items():
        name = f"{section}.{key}"
        if key not in raw:
            if field.default is REQUIRED:
                raise GenBenchError(f"params key '{name}' is missing; add it to params.yaml")
            out[key] = field.default
            continue
        value = raw[key]
        types = field.type if isinstance(field.type, tuple) else (field.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise GenBenchError(f"params key '{name}' = {value!r} must be {_type_name(field.type)}")
        if field.check is not None and value is not None:
            problem = field.check(value)
            if problem:
                raise GenBenchError(f"params key '{name}' = {value!r} {problem}")
        out[key] = value
    return out


def load_section(path: str | Path, section: str, schema: dict[str, Field]) -> dict:
    return validate_section(read_params_file(path).get(section), section, schema)


def params_hash(values: dict) -> str:
    """Short stable hash of the params a stage read (logged as a tag to trace runs)."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
