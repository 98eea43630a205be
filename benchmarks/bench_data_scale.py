"""Does the data path hold at the paper's scale? prepare's peak memory and wall time on a synthetic
100-class image folder at 10,000 and 100,000 training images (224 px JPEG), and embed's images
per second against a bare batched open_clip loop over the same decoded images.

    python benchmarks/bench_data_scale.py                       # 10k and 100k, ViT-B-32, batch 32
    python benchmarks/bench_data_scale.py --sizes 2000 --embed-model tiny-clip   # a quick look

Method:
- The folder is made under a temporary directory (deleted afterwards): per class, --variants
  distinct smooth 224 px JPEGs (a class colour, a per-image gradient and noise; a few kB each)
  written round-robin as that class's training files, so the 100,000-image folder stays small
  on disk while every file is a real JPEG that prepare has to open and decode.
- It is registered the way a user registers an image folder (params `image_folders`) and
  `genbench prepare` runs in a fresh process under `/usr/bin/time -v`; its "Maximum resident set
  size" is the peak RSS. Settings: the paper's 5-shot, 224 px, --test-per-class test images.
- embed: the 10k run's prepared test set is encoded by the embed stage's executor
  (`EMBED_EXECUTORS["local"]`: shards read, PNGs decoded and preprocessed by --workers threads
  one batch ahead of the model), and by a bare loop over the same images decoded into memory
  beforehand (`torch.stack([preprocess(Image.fromarray(x)) ...])` then `model.encode_image`),
  same model object, same batch size, after one warm-up batch. The three (bare, embed with
  --workers threads, embed with 0) run in --rounds interleaved rounds whose order rotates, so
  the load of a shared machine falls alike on each; rates are over all rounds.
  The model is an open_clip architecture with seeded random weights (no download; compute is
  that of the real weights) unless --embed-model names the kit's built-in tiny-clip.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASET = "synthetic-scale"


def jpeg_variant(cls: int, variant: int, size: int) -> bytes:
    import io

    rng = np.random.default_rng(cls * 1000 + variant)
    base = np.array([(cls * 37) % 256, (cls * 91) % 256, (cls * 53) % 256], dtype=np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    field = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
    image = base + 80 * field[..., None] + rng.normal(0, 6, (size, size, 3))
    buf = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def make_folder(root: Path, classes: int, train_per_class: int, test_per_class: int, size: int, variants: int) -> int:
    """train/ and test/ class folders of JPEGs; returns the bytes written."""
    with ThreadPoolExecutor(8) as pool:
        blobs = list(pool.map(lambda cv: jpeg_variant(*cv, size), [(c, v) for c in range(classes) for v in range(variants)]))

    def write_class(c: int) -> int:
        written = 0
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            folder = root / split / f"class_{c:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                blob = blobs[c * variants + (i + (split == "test")) % variants]
                (folder / f"{i:06d}.jpg").write_bytes(blob)
                written += len(blob)
        return written

    with ThreadPoolExecutor(8) as pool:
        return sum(pool.map(write_class, range(classes)))


def run_prepare(workdir: Path, folder: Path, args) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    params = {
        "datasets": [DATASET],
        "image_folders": {DATASET: {"root": str(folder)}},
        "prepare": {"image_size": args.image_size, "shots": args.shots, "seed": 0, "data_root": "data/raw",
                    "test_per_class": args.test_per_class, "batch_size": args.prepare_batch, "workers": args.workers},
    }
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "stages.frame.cli", "prepare", "--dataset", DATASET]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"peak_rss_mb": rss_kb / 1024, "wall_s": wall, "prepared": workdir / "data" / DATASET / "prepared"}


def embed_rates(image_set: Path, args) -> dict:
    """Images per second of the bare loop and of the embed executor (--workers threads and 0),
    run in interleaved rounds over the same --embed-images images, the order rotating each round,
    so that the load of a shared machine falls alike on all three."""
    import torch

    from genbench import storage
    from genbench.executors import EMBED_EXECUTORS, EmbeddingWorker, load_encoder

    torch.set_num_threads(args.threads)
    images, manifest = storage.load_image_set(image_set)
    images, rows = images[: args.embed_images], manifest.head(args.embed_images).drop(columns=["sha256", "shard"])
    subset = image_set.parent / "embed-bench"
    storage.write_image_set(subset, images, rows.to_dict("records"), shard_size=1000)
    bs = args.batch_size
    bundle = load_encoder(EmbeddingWorker(args.embed_model, None, batch_size=bs, cpu_threads=args.threads)).bundle
    model, preprocess = bundle.model, bundle.preprocess

    @torch.no_grad()
    def bare() -> None:
        for start in range(0, len(images), bs):
            batch = torch.stack([preprocess(Image.fromarray(x)) for x in images[start : start + bs]])
            model.encode_image(batch)

    def kit(workers: int):
        worker = EmbeddingWorker(args.embed_model, None, batch_size=bs, cpu_threads=args.threads, decode_workers=workers)
        return lambda: EMBED_EXECUTORS["local"]({"set": subset}, worker, progress=False)

    with torch.no_grad():
        model.encode_image(torch.stack([preprocess(Image.fromarray(x)) for x in images[:bs]]))
    runs = [("bare", bare), (f"embed (workers={args.workers})", kit(args.workers)), ("embed (workers=0)", kit(0))]
    seconds = {name: 0.0 for name, _ in runs}
    for r in range(args.rounds):
        for name, fn in runs[r % len(runs):] + runs[: r % len(runs)]:
            start = time.perf_counter()
            fn()
            seconds[name] += time.perf_counter() - start
    return {name: args.rounds * len(images) / s for name, s in seconds.items()} | {"images": len(images)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="training images in the folder, comma-separated")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--test-per-class", type=int, default=5, help="test images per class (prepare.test_per_class)")
    ap.add_argument("--variants", type=int, default=20, help="distinct JPEGs per class")
    ap.add_argument("--prepare-batch", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2, help="decode threads (prepare.workers, embed.workers)")
    ap.add_argument("--embed-model", default="ViT-B-32", help="open_clip architecture (random weights) or tiny-clip")
    ap.add_argument("--batch-size", type=int, default=32, help="embed batch size")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--embed-images", type=int, default=128, help="images encoded per round")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds of bare loop and embed")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at start")
    tmp = Path(tempfile.mkdtemp(prefix="genbench-data-scale-"))
    results = {}
    try:
        for n in sizes:
            folder = tmp / f"folder-{n}"
            start = time.perf_counter()
            written = make_folder(folder, args.classes, n // args.classes, args.test_per_class * 2, args.image_size,
                                  args.variants)
            made = time.perf_counter() - start
            results[n] = run_prepare(tmp / f"work-{n}", folder, args)
            r = results[n]
            print(f"prepare {n:>7,} train images ({written / 1e6:.0f} MB of JPEG, made in {made:.0f} s): "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB, wall {r['wall_s']:.1f} s", flush=True)
            if n != sizes[0]:
                shutil.rmtree(folder)
        if len(sizes) > 1:
            a, b = results[sizes[0]]["peak_rss_mb"], results[sizes[-1]]["peak_rss_mb"]
            print(f"peak RSS ratio {sizes[-1]:,} / {sizes[0]:,}: {b / a:.2f}x (target <= 1.2x, and < 1500 MB)")
        rates = embed_rates(results[sizes[0]]["prepared"] / "test", args)
        print(f"embed: {rates.pop('images')} test images of {args.image_size} px x {args.rounds} interleaved rounds, "
              f"{args.embed_model}, batch {args.batch_size}, {args.threads} torch threads")
        bare = rates["bare"]
        for name, rate in rates.items():
            print(f"  {name:<22} {rate:7.1f} images/s  ({rate / bare:.2f}x bare)")
        print(f"machine: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at end")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
