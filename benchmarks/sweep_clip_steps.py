"""How the miniature CLIP's training length shapes the default run's science.

For each (CLIP steps, seed) it trains the miniature CLIP on the digits train split, embeds the
test split, the run's generated images and its k-shot originals, and prints zero-shot accuracy,
CLER and CLER-ensemble of generated and original images, the linear probe on each, and how often
zero-shot CLIP labels a generated image with its prompt's class. The generated and original
images are the ones the last `dvc repro` wrote, so run it after one:

    dvc repro && python benchmarks/sweep_clip_steps.py --steps 30 50 100 --seeds 0 1 2 3

The choice of `bootstrap.clip_steps` in params.yaml comes from this sweep: too few steps and the
text tower is not aligned yet (zero-shot near chance); many steps and zero-shot saturates near
100 %, leaving no room to see what generated or original images add.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from genbench import storage
from genbench.clip_models import load_clip
from genbench.datasets import get_dataset
from genbench.features import encode_images, text_prototypes
from genbench.metrics.cler import cler, zero_shot
from genbench.miniature import train_clip
from genbench.probe import linear_probe


def labelled_set(directory: Path):
    images, _ = storage.load_image_set(directory)
    return images, storage.read_manifest(directory)["class_index"].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[30, 50, 100], help="CLIP training steps to try")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds to try")
    parser.add_argument("--dataset-dir", type=Path, default=Path("data/digits"), help="the run's data/<dataset> folder")
    parser.add_argument("--data-root", type=Path, default=Path("data/raw"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    ds = get_dataset("digits")
    train = ds.loader("train", args.data_root, 32)
    test = ds.loader("test", args.data_root, 32)
    sets = {"generated": labelled_set(args.dataset_dir / "generated"),
            "original": labelled_set(args.dataset_dir / "prepared" / "original")}
    print("steps seed  train_s  zero-shot | CLER gen  ens  | CLER orig  ens  | probe gen  orig | prompt->class")
    for steps in args.steps:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                train_clip(train.images, train.labels, ds.classnames, ds.templates, folder, seed=seed, steps=steps,
                           progress=False)
                seconds = time.perf_counter() - start
                bundle = load_clip(f"local-dir:{folder}")
                test_feats = encode_images(bundle, test.images, progress=False)
                text = text_prototypes(bundle, list(ds.classnames), list(ds.templates))
                row = {"zs": zero_shot(test_feats, test.labels, text)}
                for name, (images, labels) in sets.items():
                    feats = encode_images(bundle, images, progress=False)
                    row[name] = cler(feats, labels, test_feats, test.labels, num_classes=len(ds.classnames), text_feats=text)
                    row[name]["probe"] = linear_probe(feats, labels, test_feats, test.labels)["score"]
                    row[name]["agree"] = zero_shot(feats, labels, text)
            gen, orig = row["generated"], row["original"]
            print(f"{steps:5d} {seed:4d} {seconds:8.1f} {row['zs']:10.1f} | {gen['cler']:8.1f} {gen['cler_ensemble']:5.1f} | "
                  f"{orig['cler']:9.1f} {orig['cler_ensemble']:5.1f} | {gen['probe']:9.1f} {orig['probe']:5.1f} | "
                  f"{gen['agree']:13.1f}", flush=True)


if __name__ == "__main__":
    main()
