"""Caption pools: collections of (id, caption, image) the retrieval baseline searches.

A pool is a directory (or one file) in either layout, read as a stream:

- parquet shards (`*.parquet`): one row per item with an id column (`id` or `key`), a caption
  column (`caption` or `text`) and the encoded image bytes (`image`, `jpg`, `png` or `webp`;
  a struct with a `bytes` field, as Hugging Face datasets writes images, works too). This is
  what img2dataset writes for LAION with `--output_format parquet`. Other columns (url, label,
  ...) travel along as `extra`.
- WebDataset tars (`*.tar`): members grouped by key (the name up to the first dot); the image
  is the `.jpg`/`.jpeg`/`.png`/`.webp` member, the caption the `.txt` member or the `caption`
  field of the `.json` member; the id is the json's `id` or `key`, else the member key.

Ids are strings and must be unique within a pool.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from genbench import storage
from genbench.errors import GenBenchError
from genbench.webdataset import tar_samples

ID_COLUMNS = ("id", "key")
CAPTION_COLUMNS = ("caption", "text", "TEXT")
IMAGE_COLUMNS = ("image", "jpg", "png", "webp", "jpeg")
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class PoolItem:
    """One captioned image of a pool (image is None when only captions were read)."""

    id: str
    caption: str
    image: bytes | None = None
    extra: dict = field(default_factory=dict)


def pool_files(path: str | Path) -> tuple[str, list[Path]]:
    """('parquet' | 'webdataset', sorted shard files) of the pool at `path`."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".tar") and not p.name.startswith("."))
    else:
        raise GenBenchError(f"caption pool {str(path)!r} not found; point index.pool at a directory of parquet shards or WebDataset tars")
    kinds = {p.suffix for p in files}
    if not files or not kinds <= {".parquet", ".tar"}:
        raise GenBenchError(f"caption pool {str(path)!r} holds no *.parquet or *.tar shards")
    if len(kinds) > 1:
        raise GenBenchError(f"caption pool {str(path)!r} mixes parquet and tar shards; keep one layout per pool")
    return ("parquet" if kinds == {".parquet"} else "webdataset"), files


def _pick(names: Iterable[str], wanted: tuple[str, ...], what: str, path: Path, required: bool = True) -> str | None:
    names = list(names)
    for name in wanted:
        if name in names:
            return name
    if required:
        raise GenBenchError(f"pool shard {str(path)!r} has no {what} column (looked for {', '.join(wanted)}; has {', '.join(names)})")
    return None


def _image_bytes(value) -> bytes | None:
    if isinstance(value, dict):
        value = value.get("bytes")
    return bytes(value) if value is not None else None


def _iter_parquet(path: Path, with_images: bool, batch_rows: int) -> Iterator[PoolItem]:
    reader = pq.ParquetFile(path)
    names = reader.schema_arrow.names
    id_col = _pick(names, ID_COLUMNS, "id", path)
    cap_col = _pick(names, CAPTION_COLUMNS, "caption", path)
    img_col = _pick(names, IMAGE_COLUMNS, "image", path, required=with_images)
    extra_cols = [n for n in names if n not in (id_col, cap_col, img_col) and n not in IMAGE_COLUMNS]
    columns = [id_col, cap_col, *extra_cols] + ([img_col] if with_images else [])
    for batch in reader.iter_batches(batch_size=batch_rows, columns=columns):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            yield PoolItem(
                id=str(data[id_col][i]),
                caption="" if data[cap_col][i] is None else str(data[cap_col][i]),
                image=_image_bytes(data[img_col][i]) if with_images else None,
                extra={c: data[c][i] for c in extra_cols},
            )


def _member_key(name: str) -> tuple[str, str] | None:
    """A pool member's (key, lower-case suffix): its file name split at the first dot, the
    directory dropped; None for a name without a dot."""
    name = name.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    key, suffix = name.split(".", 1)
    return key, suffix.lower()


def _tar_groups(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {suffix: bytes}) per sample, in tar order."""
    with tarfile.open(path, "r") as tar:
        for key, members in tar_samples(tar, _member_key):
            yield key, {suffix: tar.extractfile(member).read() for suffix, member in members}


def _iter_webdataset(path: Path, with_images: bool) -> Iterator[PoolItem]:
    for key, members in _tar_groups(path):
        meta = {}
        if "json" in members:
            try:
                meta = json.loads(members["json"])
            except json.JSONDecodeError as exc:
                raise GenBenchError(f"pool shard {str(path)!r}: {key}.json is not valid JSON ({exc.msg})") from None
        if "txt" in members:
            caption = members["txt"].decode("utf-8", errors="replace").strip()
        elif "caption" in meta:
            caption = str(meta["caption"] or "")
        else:
            raise GenBenchError(f"pool shard {str(path)!r}: sample {key!r} has no .txt member and no 'caption' in its .json")
        image = next((members[s] for s in IMAGE_SUFFIXES if s in members), None)
        if with_images and image is None:
            raise GenBenchError(f"pool shard {str(path)!r}: sample {key!r} has no image member ({', '.join(IMAGE_SUFFIXES)})")
        item_id = str(meta.get("id", meta.get("key", key)))
        extra = {k: v for k, v in meta.items() if k not in ("id", "key", "caption")}
        yield PoolItem(id=item_id, caption=caption, image=image if with_images else None, extra=extra)


def iter_pool(path: str | Path, *, with_images: bool = True, batch_rows: int = 1024) -> Iterator[PoolItem]:
    """Stream every item of the pool, shard by shard, in a stable order."""
    kind, files = pool_files(path)
    for file in files:
        if kind == "parquet":
            yield from _iter_parquet(file, with_images, batch_rows)
        else:
            yield from _iter_webdataset(file, with_images)


def iter_caption_batches(path: str | Path, batch_size: int) -> Iterator[tuple[list[str], list[str]]]:
    """(ids, captions) in batches of `batch_size`, reading no image bytes from parquet shards."""
    ids, captions = [], []
    for item in iter_pool(path, with_images=False):
        ids.append(item.id)
        captions.append(item.caption)
        if len(ids) == batch_size:
            yield ids, captions
            ids, captions = [], []
    if ids:
        yield ids, captions


def count_pool(path: str | Path) -> int:
    """Number of items (parquet: from the file footers; tars: by reading the member list)."""
    kind, files = pool_files(path)
    if kind == "parquet":
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return sum(1 for f in files for _ in _tar_groups(f))


def fetch_items(path: str | Path, ids: Iterable[str]) -> dict[str, PoolItem]:
    """The items with the given ids (images included), found in one pass over the pool."""
    wanted = set(ids)
    found: dict[str, PoolItem] = {}
    if not wanted:
        return found
    for item in iter_pool(path, with_images=True):
        if item.id in wanted:
            found[item.id] = item
            if len(found) == len(wanted):
                break
    return found


def pool_fingerprint(path: str | Path) -> str:
    """SHA-256 over the shard names and sizes: changes when shards are added, removed or rewritten."""
    _, files = pool_files(path)
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


def write_parquet_pool(directory: str | Path, items: Iterable[PoolItem], shard_size: int = 1000) -> list[Path]:
    """Write items as parquet shards `pool-00000.parquet`, ... (columns id, caption, image and the
    items' extra fields), each atomically; returns the shard paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, chunk = [], []

    def flush() -> None:
        columns = {"id": [i.id for i in chunk], "caption": [i.caption for i in chunk], "image": [i.image for i in chunk]}
        for key in chunk[0].extra:
            columns[key] = [i.extra.get(key) for i in chunk]
        table = pa.table({**columns, "image": pa.array(columns["image"], type=pa.binary())})
        path = directory / f"pool-{len(paths):05d}.parquet"
        with storage.atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        paths.append(path)

    for item in items:
        chunk.append(item)
        if len(chunk) == shard_size:
            flush()
            chunk = []
    if chunk:
        flush()
    return paths


def write_webdataset_pool(path: str | Path, items: Iterable[PoolItem], image_suffix: str = "png") -> Path:
    """Write items as one WebDataset tar (`<id>.<suffix>`, `<id>.txt`, `<id>.json`), atomically."""
    path = Path(path)
    with storage.atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for item in items:
                meta = json.dumps({"key": item.id, **item.extra}, sort_keys=True).encode()
                for suffix, payload in ((image_suffix, item.image or b""), ("txt", item.caption.encode()), ("json", meta)):
                    info = tarfile.TarInfo(f"{item.id}.{suffix}")
                    info.size = len(payload)
                    info.mtime = 0
                    tar.addfile(info, io.BytesIO(payload))
    return path


def read_column(path: str | Path, column: str) -> dict[str, object] | None:
    """{id: value} of one extra column of a parquet pool (e.g. a ground-truth `label`), or None
    when the pool is not parquet or lacks the column."""
    kind, files = pool_files(path)
    if kind != "parquet":
        return None
    out: dict[str, object] = {}
    for file in files:
        names = pq.ParquetFile(file).schema_arrow.names
        if column not in names:
            return None
        id_col = _pick(names, ID_COLUMNS, "id", file)
        table = pq.read_table(file, columns=[id_col, column]).to_pydict()
        out.update({str(i): v for i, v in zip(table[id_col], table[column])})
    return out
