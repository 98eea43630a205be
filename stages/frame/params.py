"""Reading and validating a stage's section of params.yaml.

A stage declares its section as a schema: a mapping from key to `Field(type, default)`, with the
allowed values, where there is a fixed set, declared once as `choices`. Unknown keys, missing
required keys, values of the wrong type and values outside `choices` are reported as
`GenBenchError` naming the key, before the stage writes anything.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection

import yaml

from genbench.errors import GenBenchError

REQUIRED = object()


@dataclass(frozen=True)
class Field:
    type: type | tuple[type, ...]
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None  # returns an error text, or None when valid
    help: str = ""
    choices: Collection | None = None  # the allowed values (a non-null value outside them is an error)


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


def closest(name: str, known) -> str | None:
    """The known name nearest to a misspelt one (difflib), or None when none is near."""
    found = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_name(kind: str, name: str, known, prefix: str = "") -> str:
    """The error text for an unknown key or section, naming the closest known one."""
    near = closest(name, known)
    hint = f"did you mean '{prefix}{near}'?" if near else f"known {kind}s: {', '.join(known)}"
    return f"params {kind} '{prefix}{name}' does not exist; {hint}"


def check_section(raw: Any, section: str, schema: dict[str, Field]) -> tuple[dict, list[str]]:
    """The section with defaults filled in, and every problem found in it (empty when valid).
    A key with a problem keeps its default in the returned values."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, [f"params '{section}' must be a mapping, got {type(raw).__name__}"]
    problems = [unknown_name("key", key, schema, f"{section}.") for key in raw if key not in schema]
    out = {}
    for key, field in schema.items():
        name = f"{section}.{key}"
        out[key] = None if field.default is REQUIRED else field.default
        if key not in raw:
            if field.default is REQUIRED:
                problems.append(f"params key '{name}' is missing; add it to params.yaml")
            continue
        value = raw[key]
        types = field.type if isinstance(field.type, tuple) else (field.type,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            problems.append(f"params key '{name}' = {value!r} must be {_type_name(field.type)}")
            continue
        problem = field.check(value) if field.check is not None and value is not None else None
        if problem is None and field.choices is not None and value is not None and value not in field.choices:
            problem = f"must be one of {', '.join(map(str, field.choices))}"
        if problem:
            problems.append(f"params key '{name}' = {value!r} {problem}")
            continue
        out[key] = value
    return out, problems


def validate_section(raw: Any, section: str, schema: dict[str, Field]) -> dict:
    """Return the section with defaults filled in, or raise GenBenchError naming the first bad key."""
    values, problems = check_section(raw, section, schema)
    if problems:
        raise GenBenchError(problems[0])
    return values


def load_section(path: str | Path, section: str, schema: dict[str, Field]) -> dict:
    return validate_section(read_params_file(path).get(section), section, schema)


def params_hash(values: dict) -> str:
    """Short stable hash of the params a stage read (logged as a tag to trace runs)."""
    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
