"""Image sets on disk: tar shards in WebDataset layout plus one manifest row per image.

Layout of an image set directory:

    shard-00000.tar      members `<key>.png` and `<key>.json` (the manifest row), in key order
    shard-00000.done     JSON sidecar: the shard's rows, the tar's sha256 and the plan hash
    manifest.parquet     all rows of all shards, written last

A shard counts as complete only when its sidecar exists, names the same plan hash as the work
being asked for, and the tar's sha256 matches. Every read checks the set first (`verify_image_set`):
each shard's tar against its sidecar's sha256, the manifest's rows against the sidecars' (keys and
image sha256), and every sidecar row is in the manifest or in `dropped.parquet`; a failure is a
`DataFileError` naming the file. Both files are written atomically (temporary
file in the same directory, fsync, rename), the tar before the sidecar, so a process killed at
any point leaves either a complete shard or one that is redone, never a half-written one.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from PIL import Image

from genbench.errors import DataFileError

MANIFEST = "manifest.parquet"
DROPPED = "dropped.parquet"  # rows a filter made but left out of the manifest (generate's CF)


def umask_mode(full: int = 0o666) -> int:
    """`full` as the user's umask lets it be (what open() would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it, give it the user's umask mode
    (mkstemp makes it 0600) and rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, umask_mode())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.filename in (None, tmp, str(tmp_path)):  # name the file the user knows (disk full, read-only)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def encode_png(image: np.ndarray | Image.Image) -> bytes:
    """Deterministic PNG bytes (no timestamps or metadata chunks)."""
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    buf = io.BytesIO()
    pil.convert("RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def decode_png_image(data: bytes) -> Image.Image:
    """PNG bytes -> RGB PIL image, fully read."""
    return Image.open(io.BytesIO(data)).convert("RGB")


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(decode_png_image(data))


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


@dataclass(frozen=True)
class Record:
    """One image and its manifest row (must contain 'key'; sha256 is filled in on write)."""

    png: bytes
    row: dict


def write_shard(directory: str | Path, index: int, records: Iterable[Record], plan_hash: str) -> list[dict]:
    """Write shard `index` atomically and return its manifest rows (with sha256 and shard).
    `records` is read once, in order, each written as it comes (a generator streams)."""
    directory = Path(directory)
    name = shard_name(index)
    rows = []
    with atomic_path(directory / f"{name}.tar") as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for rec in records:
                row = {**rec.row, "sha256": sha256_bytes(rec.png), "shard": f"{name}.tar"}
                meta = json.dumps(row, sort_keys=True, default=_json_default).encode()
                for suffix, payload in (("png", rec.png), ("json", meta)):
                    info = tarfile.TarInfo(f"{row['key']}.{suffix}")
                    info.size = len(payload)
                    info.mtime = 0
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(payload))
                rows.append(row)
    atomic_write_json(
        directory / f"{name}.done",
        {"plan_hash": plan_hash, "tar_sha256": sha256_file(directory / f"{name}.tar"), "rows": rows},
    )
    return rows


def completed_shard_rows(directory: str | Path, index: int, plan_hash: str) -> list[dict] | None:
    """The rows of shard `index` if it is complete, intact and of this plan; otherwise None."""
    directory = Path(directory)
    name = shard_name(index)
    done, tar = directory / f"{name}.done", directory / f"{name}.tar"
    if not (done.is_file() and tar.is_file()):
        return None
    try:
        info = json.loads(done.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    if info.get("plan_hash") != plan_hash or info.get("tar_sha256") != sha256_file(tar):
        return None
    return info["rows"]


def iter_shard(path: str | Path) -> Iterator[tuple[dict, bytes]]:
    """Yield (manifest row, png bytes) for each image in a shard, checking each sha256."""
    try:
        with tarfile.open(path, "r") as tar:
            members = {m.name: m for m in tar.getmembers()}
            keys = sorted(n[: -len(".png")] for n in members if n.endswith(".png"))
            for key in keys:
                png = tar.extractfile(members[f"{key}.png"]).read()
                row = json.loads(tar.extractfile(members[f"{key}.json"]).read())
                if sha256_bytes(png) != row["sha256"]:
                    raise DataFileError(path, f"is corrupt: image {key} does not match its sha256")
                yield row, png
    except (tarfile.TarError, KeyError, json.JSONDecodeError, EOFError) as exc:
        raise DataFileError(path, f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None


def write_manifest(directory: str | Path, rows: Iterable[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    with atomic_path(Path(directory) / MANIFEST) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame


def read_table(path: Path, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A parquet file as a frame; missing or unreadable files, or missing columns, are DataFileError."""
    if not path.is_file():
        raise DataFileError(path, "not found", missing=True)
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise DataFileError(path, f"is truncated or corrupt ({str(exc).splitlines()[0][:200]})") from None
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataFileError(path, f"is corrupt: it has no column '{absent[0]}'")
    return frame


def read_manifest(directory: str | Path, columns: tuple[str, ...] = ("key",)) -> pd.DataFrame:
    return read_table(Path(directory) / MANIFEST, columns)


def _sidecar_rows(directory: Path, shard: str) -> list[dict]:
    tar, done = directory / shard, directory / f"{shard.removesuffix('.tar')}.done"
    for path in (tar, done):
        if not path.is_file():
            raise DataFileError(path, "not found, but the manifest lists images in it", missing=True)
    try:
        info = json.loads(done.read_text())
        expected, rows = info["tar_sha256"], info["rows"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataFileError(done, f"is corrupt ({type(exc).__name__})") from None
    if sha256_file(tar) != expected:
        raise DataFileError(tar, "is truncated or corrupt: its sha256 does not match its sidecar")
    return rows


def verify_image_set(directory: str | Path) -> pd.DataFrame:
    """The set's manifest, after checking it against every shard's sidecar and each tar's sha256."""
    directory = Path(directory)
    manifest = read_manifest(directory, ("key", "shard", "sha256"))
    if manifest["key"].duplicated().any():
        raise DataFileError(directory / MANIFEST, f"is corrupt: key {manifest['key'][manifest['key'].duplicated()].iloc[0]!r} is listed twice")
    listed = dict(zip(manifest["key"], manifest["sha256"]))
    dropped = set(read_table(directory / DROPPED, ("key",))["key"]) if (directory / DROPPED).is_file() else set()
    shards = sorted(set(manifest["shard"]) | {p.name.removesuffix(".done") + ".tar" for p in directory.glob("shard-*.done")})
    in_shards: set[str] = set()
    for shard in shards:
        for row in _sidecar_rows(directory, shard):
            in_shards.add(row["key"])
            if row["key"] in listed:
                if listed[row["key"]] != row["sha256"]:
                    raise DataFileError(directory / MANIFEST, f"is corrupt: image {row['key']} has another sha256 in {shard}")
            elif row["key"] not in dropped:
                raise DataFileError(directory / MANIFEST, f"lacks image {row['key']} of {shard}: the manifest is incomplete")
    absent = [k for k in listed if k not in in_shards]
    if absent:
        raise DataFileError(directory / MANIFEST, f"lists {len(absent)} images no shard holds (first: {absent[0]})")
    return manifest


def load_image_set(directory: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """All images of a set as uint8 (N, H, W, 3) in manifest order, with the manifest (verified)."""
    directory = Path(directory)
    manifest = verify_image_set(directory)
    by_key: dict[str, np.ndarray] = {}
    for shard in sorted(manifest["shard"].unique()):
        for row, png in iter_shard(directory / shard):
            by_key[row["key"]] = decode_png(png)
    missing = [k for k in manifest["key"] if k not in by_key]
    if missing:
        raise DataFileError(directory / MANIFEST, f"lists {len(missing)} images no shard holds (first: {missing[0]})")
    images = np.stack([by_key[k] for k in manifest["key"]]) if len(manifest) else np.zeros((0, 1, 1, 3), np.uint8)
    return images, manifest


def load_images(directory: str | Path, manifest: pd.DataFrame) -> np.ndarray:
    """The images of the given manifest rows (a subset of the set's manifest), decoded in row
    order; only their members of their shards are read, each checked against its sha256."""
    directory = Path(directory)
    by_key: dict[str, np.ndarray] = {}
    for shard, rows in manifest.groupby("shard", sort=True):
        with tarfile.open(directory / shard, "r") as tar:
            for key, sha in zip(rows["key"], rows["sha256"]):
                png = tar.extractfile(f"{key}.png").read()
                if sha256_bytes(png) != sha:
                    raise ValueError(f"{directory / shard}: image {key} does not match its sha256; the shard is corrupt")
                by_key[key] = decode_png(png)
    if not by_key:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return np.stack([by_key[k] for k in manifest["key"]])


def remove_stale(directory: str | Path, keep: set[str]) -> None:
    """Delete shard files and temporaries of the set that are not in `keep` (file names)."""
    for path in Path(directory).iterdir():
        if path.is_file() and path.name not in keep and (path.name.startswith("shard-") or path.suffix == ".tmp"):
            path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; on success it replaces `path` whole."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, umask_mode(0o777))
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_image_set(directory: str | Path, images: np.ndarray, rows: list[dict], shard_size: int = 1000) -> pd.DataFrame:
    """Write a whole image set (shards, sidecars, manifest) into `directory`."""
    return write_image_stream(directory, zip(images, rows), shard_size)


def write_image_stream(directory: str | Path, items: Iterable[tuple[np.ndarray, dict]],
                       shard_size: int = 1000) -> pd.DataFrame:
    """Write an image set from (image, manifest row) pairs as they come: each image is encoded
    and written into the open shard before the next is taken, so no more than one is held here.
    The files are those `write_image_set` writes for the same images and rows."""
    items = iter(items)
    all_rows, index = [], 0
    while True:
        chunk = itertools.islice(items, shard_size)
        first = next(chunk, None)
        if first is None:
            break
        records = (Record(png=encode_png(img), row=row) for img, row in itertools.chain([first], chunk))
        all_rows.extend(write_shard(directory, index, records, plan_hash="static"))
        index += 1
    return write_manifest(directory, all_rows)
