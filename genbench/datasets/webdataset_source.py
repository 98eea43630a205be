"""Datasets read from a local copy of a CLIP benchmark WebDataset mirror (Hugging Face hub,
organisation `clip-benchmark`, repositories `wds_<name>`).

Layout of a copy (what `hf download clip-benchmark/wds_<name> --repo-type dataset --local-dir DIR`
produces): `DIR/<split>/0.tar, 1.tar, ...` (optionally `nshards.txt`), `DIR/classnames.txt` (one
name per line, line i = label i) and `DIR/zeroshot_classification_templates.txt`. Each sample in a
shard is a group of tar members sharing a key: one image (`.webp`, `.png`, `.jpg` or `.jpeg`) and
its label, `.cls` (the label id as text) or, for multi-label sets, `.npy` (a multi-hot vector).
Labels are mapped to the registry's class order through classnames.txt (`sources.label_map`).

Opening a split reads only the tar headers and the small label members; each image member's
place in its shard is remembered and its bytes are read and decoded when it is asked for.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from genbench.datasets.access import SplitReader
from genbench.datasets.images import decode, square_rgb
from genbench.datasets.sources import Source, label_map, map_labels, normalise
from genbench.errors import GenBenchError
from genbench.webdataset import tar_samples

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
LABEL_EXTENSIONS = ("cls", "npy")
HUB_ORG = "clip-benchmark"


def shard_paths(split_dir: Path) -> list[Path]:
    """The split's shards in order: 0.tar .. n-1.tar as nshards.txt says, else every *.tar by number."""
    count_file = split_dir / "nshards.txt"
    if count_file.is_file():
        paths = [split_dir / f"{i}.tar" for i in range(int(count_file.read_text().strip()))]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise GenBenchError(f"WebDataset split {split_dir} lists {len(paths)} shards but {missing[0]} is missing")
        return paths
    return sorted(split_dir.glob("*.tar"), key=lambda p: (len(p.stem), p.stem))


@dataclass(frozen=True)
class Member:
    """Where one image's bytes lie: the shard, the byte offset of the member's data, its size."""

    shard: Path
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.shard, "rb") as fh:
            fh.seek(self.offset)
            return fh.read(self.size)


def sample_key(name: str) -> tuple[str, str]:
    """A member's (key, lower-case extension) as WebDataset cuts them: the path up to the first
    dot of the file name, and the rest."""
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return name[: len(name) - len(base)] + key, ext.lower()


def index_shard(shard: Path) -> Iterator[tuple[str, dict[str, Member], dict[str, bytes]]]:
    """Yield (key, image members by extension, label members' bytes) per sample of one shard, in
    archive order, reading only the tar headers and the `.cls`/`.npy` members."""
    with tarfile.open(shard) as tar:
        for key, members in tar_samples(tar, sample_key):
            images, labels = {}, {}
            for ext, info in members:
                if ext in IMAGE_EXTENSIONS:
                    images[ext] = Member(shard, info.offset_data, info.size)
                elif ext in LABEL_EXTENSIONS:
                    labels[ext] = tar.extractfile(info).read()
            yield key, images, labels


def open_webdataset(split: str, location: Path, size: int, classnames: Sequence[str], dataset: str) -> SplitReader:
    split_dir = location / split
    if not split_dir.is_dir():
        raise GenBenchError(f"dataset {dataset!r}: the WebDataset copy at {location} has no {split!r} split")
    names_file = location / "classnames.txt"
    source_names = None
    if names_file.is_file():
        source_names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    members, labels, multilabel = [], [], False
    for shard in shard_paths(split_dir):
        for key, images, label in index_shard(shard):
            ext = next((e for e in IMAGE_EXTENSIONS if e in images), None)
            if ext is None:
                continue
            if "cls" in label:
                labels.append(int(label["cls"].decode().strip()))
            elif "npy" in label:
                labels.append(np.load(io.BytesIO(label["npy"]), allow_pickle=False).astype(np.int64))
                multilabel = True
            else:
                raise GenBenchError(f"dataset {dataset!r}: sample {key!r} in {shard} has no .cls or .npy label")
            members.append(images[ext])
    if multilabel:
        stacked = _reorder_columns(np.stack(labels), source_names, classnames, dataset)
    else:
        stacked = map_labels(np.asarray(labels, dtype=np.int64), label_map(source_names, classnames, dataset))

    def decode_one(i: int) -> np.ndarray:
        return square_rgb(decode(members[i].read()), size)

    return SplitReader(labels=stacked, decode_one=decode_one, image_size=size)


def _reorder_columns(multi: np.ndarray, source_names: Sequence[str] | None, classnames: Sequence[str],
                     dataset: str) -> np.ndarray:
    """Multi-hot columns in the source's class order -> the registry's order (matched by name)."""
    if source_names is None:
        return multi
    src, ours = [normalise(s) for s in source_names], [normalise(c) for c in classnames]
    if sorted(src) != sorted(ours) or len(set(src)) != len(src):
        raise GenBenchError(
            f"dataset {dataset!r}: classnames.txt lists {len(src)} classes that do not match the registry's "
            f"{len(ours)} ({', '.join(classnames[:3])}, ...); use the dataset's own WebDataset mirror"
        )
    return multi[:, [src.index(c) for c in ours]]


def webdataset_source(dataset: str, repo: str) -> Source:
    """A source reading `<root>/<repo>/`, a local copy of hub repository clip-benchmark/<repo>."""

    def open_split(split: str, location: Path, size: int, classnames: Sequence[str]) -> SplitReader:
        return open_webdataset(split, location, size, classnames, dataset)

    return Source(
        kind="webdataset",
        subdir=repo,
        marker="test",
        open=open_split,
        how_to_get=f"hf download {HUB_ORG}/{repo} --repo-type dataset --local-dir {{location}}",
    )
