"""Seconds to write each stand-in model of a profile, and to load it through the kit's loader.

    python benchmarks/bench_standin_models.py                      # profiles/paper.yaml
    python benchmarks/bench_standin_models.py --full-size-generator  # SD 2.x at its real size too

Method: `write_standin_models` into a fresh HF_HOME (the seconds each record carries: build the
seeded model, save it, hash and move its files into the cache); then, in a fresh process with
HF_HOME set and HF_HUB_OFFLINE=1, each model is loaded once through the loader its stage calls
(genbench.clip_models.load_clip, genbench.generators.load_pipeline, load_enhancer,
load_captioner, the invert filter's load_captioner and load_similarity) after the libraries are
imported, so import time is not counted. A model several keys name is written and loaded once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genbench.rehearsal.models import CAPTIONER, CLIP, GENERATOR, TEXT_ENCODER, TEXT_TO_TEXT  # noqa: E402

RESULT = "LOAD-SECONDS "


def _loaders(params: dict) -> dict:
    """kind -> loader(record) calling the kit's loader as the stage naming it does."""
    from genbench.clip_models import load_clip
    from genbench.generators import load_pipeline
    from genbench.retrieval import filter as reference_filter
    from genbench.strategies.captions import load_captioner
    from genbench.strategies.enhance import load_enhancer

    g, inv = params.get("generate") or {}, params.get("invert") or {}
    return {
        CLIP: lambda r: load_clip(r["id"], r["revision"]),
        GENERATOR: lambda r: load_pipeline(r["id"], revision=r["revision"], dtype=g.get("dtype", "float32"), variant=g.get("variant")),
        TEXT_TO_TEXT: lambda r: load_enhancer(r["id"], r["revision"]),
        CAPTIONER: lambda r: (load_captioner(r["id"], r["revision"], dtype=g.get("dtype", "float32"))
                              if "generate.cip_model" in r["keys"] else reference_filter.load_captioner(inv["filter_captioner"])),
        TEXT_ENCODER: lambda r: reference_filter.load_similarity(inv["filter_similarity"]),
    }


def load_all(params: dict, records: list[dict]) -> dict[str, float]:
    import diffusers  # noqa: F401  (imports first, so that only loading is timed)
    import open_clip  # noqa: F401
    import transformers  # noqa: F401

    loaders = _loaders(params)
    out = {}
    for rec in records:
        if rec["provided"]:
            started = time.perf_counter()
            loaders[rec["kind"]](rec)
            out[f"{rec['id']}|{rec['revision']}"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=str(ROOT / "profiles" / "paper.yaml"))
    parser.add_argument("--full-size-generator", action="store_true", help="the generator at SD 2.x's real size")
    parser.add_argument("--load-only", metavar="RECORDS_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = yaml.safe_load(Path(args.profile).read_text())
    if args.load_only:
        print(RESULT + json.dumps(load_all(params, json.loads(Path(args.load_only).read_text()))))
        return

    from genbench.rehearsal.models import write_standin_models

    with tempfile.TemporaryDirectory() as tmp:
        hf_home = Path(tmp) / "hf"
        records = write_standin_models(params, hf_home, full_size_generator=args.full_size_generator)
        (Path(tmp) / "records.json").write_text(json.dumps(records))
        env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, __file__, "--profile", args.profile, "--load-only", str(Path(tmp) / "records.json")],
                              env=env, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
        if proc.returncode or not lines:
            sys.exit(f"loading failed:\n{proc.stderr[-3000:]}")
        loads = json.loads(lines[-1][len(RESULT):])
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
          f"profile {args.profile}{' (full-size generator)' if args.full_size_generator else ''}")
    print(f"{'model':58s} {'kind':13s} {'MB':>8s} {'write s':>8s} {'load s':>7s}")
    for rec in records:
        name = f"{rec['id']}" + (f" @{rec['revision'][:12]}" if rec["revision"] else "")
        if not rec["provided"]:
            print(f"{name:58s} {rec['kind']:13s} not provided: {rec['note']}")
            continue
        load = loads[f"{rec['id']}|{rec['revision']}"]
        print(f"{name:58s} {rec['kind']:13s} {rec['bytes'] / 1e6:8.1f} {rec['seconds']:8.1f} {load:7.1f}")
    print(f"{'total':58s} {'':13s} {sum(r['bytes'] for r in records) / 1e6:8.1f} "
          f"{sum(r['seconds'] for r in records):8.1f} {sum(loads.values()):7.1f}")


if __name__ == "__main__":
    main()
