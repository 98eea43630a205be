"""dvc.yaml declares what each stage reads: the code its command imports and the params it reads.

Code: from the module of a stage's command (`genbench X` -> stages.frame.cli.COMMANDS["X"]) the test
follows every `import` statement in the kit (module level and inside functions; `from a import b`
counts a/b.py when b is a module, else a/__init__.py), without descending into the frame
(FRAME, the package stages/frame: command line, params, paths, tracking, which record and validate but compute nothing a
stage writes). Each file reached, and the package data a reached module reads, must lie under one
of the stage's `deps`.

Params: every stage run by the frame reads `profile` and `cost.snapshot`/`cost.sku`, and its own
section (the one named after the stage); a stage module that reads other sections through the
whole params file (`all_params.get("generate")`, then `.get("ti_embeddings")`, or a frame helper
such as `pipeline_datasets(all_params)`) must declare each key it reads, or its whole section.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from stages.frame.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
KIT = ("genbench", "stages", "cost")
FRAME = {"stages.frame"} | {f"stages.frame.{path.stem}" for path in (ROOT / "stages" / "frame").glob("*.py")}
# Exception types and their messages: an edit there cannot change what a stage writes.
MESSAGES_ONLY = {"genbench/errors.py", "cost/errors.py"}
FRAME_PARAMS = {"profile", "cost.snapshot", "cost.sku"}
# Frame helpers that read params sections on a stage's behalf: name -> the keys it reads.
FRAME_READERS = {"pipeline_datasets": {"datasets"}, "register_params_datasets": {"image_folders"},
                 "pricing_params": {"cost.snapshot", "cost.sku"}}
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path, package: str) -> set[str]:
    """The kit modules `path` imports (every import statement, relative ones resolved in `package`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if module_file(f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] in KIT and module_file(name)}


def closure(module: str) -> dict[str, Path]:
    """Module name -> file of every kit module reachable from `module` by imports, outside FRAME."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name in FRAME:
            continue
        path = module_file(name)
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(imported_modules(path, package))
    return seen


def package_data_read(files: dict[str, Path]) -> set[str]:
    """Package data (pyproject's package-data) that a reached module names: its folder in a string."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    out = set()
    for package, globs in declared.items():
        folder = ROOT.joinpath(*package.split("."))
        for glob in globs:
            sub = glob.split("/")[0]
            if any(path.parent == folder and re.search(rf"[\"']{re.escape(sub)}[\"'/]", path.read_text())
                   for path in files.values()):
                out.update(p.relative_to(ROOT).as_posix() for p in folder.glob(glob))
    return out


def stage_module(cmd: str) -> str:
    """The stage module of the click command a dvc.yaml `cmd` runs (`genbench shots` -> the
    module defining `report`'s subcommand `shots`)."""
    words = [w for w in cmd.split() if not w.startswith("-") and "$" not in w]
    assert words[0] == "genbench", cmd
    module, attr = COMMANDS[words[1]].split(":")
    command = getattr(importlib.import_module(module), attr)
    for word in words[2:]:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
    if command.callback.__module__ not in FRAME:
        return command.callback.__module__
    # a frame-built command (stages.frame.dataset_command) belongs to the stage module that names it `command`
    return next(name for name, mod in sorted(sys.modules.items())
                if name.startswith("stages.") and name not in FRAME and getattr(mod, "command", None) is command)


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def section_reads(path: Path) -> set[str]:
    """The params keys a module reads through `all_params`: "S" (the whole section) or "S.k"."""
    tree = ast.parse(path.read_text())
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def section_of(node) -> str | None:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "all_params"
                and node.args and isinstance(node.args[0], ast.Constant)):
            return node.args[0].value
        if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "all_params"
                and isinstance(node.slice, ast.Constant)):
            return node.slice.value
        return None

    def key_read(node) -> str | None:
        """The constant key `node` is read with (node.get("k", ...) or node["k"]), else None."""
        up = parent.get(node)
        while isinstance(up, ast.BoolOp) and up.values[0] is node:  # `all_params.get("S") or {}`
            node, up = up, parent.get(up)
        if isinstance(up, ast.Attribute) and up.attr == "get" and isinstance(parent.get(up), ast.Call):
            call = parent[up]
            return call.args[0].value if call.args and isinstance(call.args[0], ast.Constant) else None
        if isinstance(up, ast.Subscript) and up.value is node and isinstance(up.slice, ast.Constant):
            return up.slice.value
        return None

    def assigned_to(node) -> str | None:
        up = parent.get(node)
        while isinstance(up, ast.BoolOp) and up.values[0] is node:
            node, up = up, parent.get(up)
        if isinstance(up, ast.Assign) and len(up.targets) == 1 and isinstance(up.targets[0], ast.Name):
            return up.targets[0].id
        return None

    reads, variables = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FRAME_READERS:
            if any(isinstance(a, ast.Name) and a.id == "all_params" for a in node.args):
                reads.update(FRAME_READERS[node.func.id])
        section = section_of(node)
        if section is None:
            continue
        key, variable = key_read(node), assigned_to(node)
        if key is not None:
            reads.add(f"{section}.{key}")
        elif variable is not None:
            variables[variable] = section
        else:
            reads.add(section)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in variables:
            key = key_read(node)
            reads.add(f"{variables[node.id]}.{key}" if key is not None else variables[node.id])
    return reads


def declared_covers(key: str, params: list) -> bool:
    names = {p if isinstance(p, str) else next(iter(p)) for p in params}
    return key in names or key.split(".")[0] in names


def stage_rows():
    for name, stage in DVC.items():
        body = stage.get("do", stage)
        yield pytest.param(name, body, id=name)


@pytest.mark.parametrize(("name", "stage"), stage_rows())
def test_deps_cover_the_code_the_stage_imports(name, stage):
    files = closure(stage_module(stage["cmd"]))
    deps = [d for d in stage.get("deps", []) if isinstance(d, str)]
    needed = {p.relative_to(ROOT).as_posix() for p in files.values()} | package_data_read(files)
    missing = sorted(p for p in needed - MESSAGES_ONLY if not covered(p, deps))
    assert not missing, f"dvc.yaml stage '{name}' imports code it does not depend on: add to its deps: {', '.join(missing)}"


@pytest.mark.parametrize(("name", "stage"), stage_rows())
def test_params_cover_the_sections_the_stage_reads(name, stage):
    module = stage_module(stage["cmd"])
    sources = [path for mod, path in closure(module).items() if mod.startswith("stages.")]
    runs_in_frame = any(re.search(rf"(run_stage|dataset_stage_command)\(\s*\"{name}\"", p.read_text()) for p in sources)
    reads = set().union(*(section_reads(p) for p in sources))
    if runs_in_frame:
        reads |= FRAME_PARAMS | {name}
    params = stage.get("params", [])
    missing = sorted(key for key in reads if not declared_covers(key, params))
    assert not missing, f"dvc.yaml stage '{name}' reads params it does not declare: add to its params: {', '.join(missing)}"


def test_every_stage_with_params_runs_in_the_frame_under_its_own_name():
    for name, stage in DVC.items():
        body = stage.get("do", stage)
        if not body.get("params"):
            continue
        source = module_file(stage_module(body["cmd"])).read_text()
        assert re.search(rf"(run_stage|dataset_stage_command)\(\s*\"{name}\"", source), name
