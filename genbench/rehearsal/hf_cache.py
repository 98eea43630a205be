"""Writing a folder of model files into a Hugging Face cache as a real download leaves it.

The layout (huggingface_hub's "Understand caching" guide):

    <HF_HOME>/hub/models--ORG--NAME/
        blobs/<etag>                       file contents; etag = sha256 for LFS files, git blob sha1 otherwise
        refs/<branch>                      the commit a branch or tag resolved to (absent for a pinned commit)
        snapshots/<commit>/<path>          relative symlinks into blobs/

A pinned 40-hex revision is the snapshot folder's name and writes no ref, as `hf_hub_download`
does; any other revision (None means `main`) gets a commit derived from the files and a ref.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

# Suffixes the hub stores through Git LFS (their etag is the content's sha256).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".model")
COMMIT = re.compile(r"[0-9a-f]{40}")
CHUNK = 1 << 24


def hub_cache(hf_home: str | Path) -> Path:
    """The hub cache inside an HF_HOME folder."""
    return Path(hf_home) / "hub"


def repo_folder(hf_home: str | Path, repo_id: str) -> Path:
    from huggingface_hub.file_download import repo_folder_name

    return hub_cache(hf_home) / repo_folder_name(repo_id=repo_id, repo_type="model")


def is_commit(revision: str | None) -> bool:
    return bool(revision) and COMMIT.fullmatch(revision) is not None


def file_etag(path: Path) -> str:
    """sha256 of an LFS file, git's blob sha1 of any other."""
    if path.suffix in LFS_SUFFIXES:
        h = hashlib.sha256()
    else:
        h = hashlib.sha1()
        h.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def derived_commit(repo_id: str, revision: str, etags: dict[str, str]) -> str:
    h = hashlib.sha1(f"{repo_id}\0{revision}\0".encode())
    for rel in sorted(etags):
        h.update(f"{rel}\0{etags[rel]}\0".encode())
    return h.hexdigest()


def import_folder(source: str | Path, hf_home: str | Path, repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Move every file under `source` into the cache as `repo_id` at `revision`; returns the
    snapshot folder and its commit. An existing snapshot of that commit is replaced."""
    source = Path(source)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    etags = {p.relative_to(source).as_posix(): file_etag(p) for p in files}
    revision = revision or "main"
    commit = revision if is_commit(revision) else derived_commit(repo_id, revision, etags)
    root = repo_folder(hf_home, repo_id)
    snapshot = root / "snapshots" / commit
    if snapshot.exists():
        shutil.rmtree(snapshot)
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = path.relative_to(source).as_posix()
        blob = root / "blobs" / etags[rel]
        if blob.exists():
            path.unlink()
        else:
            shutil.move(str(path), blob)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    if not is_commit(revision):
        ref = root / "refs" / revision
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return snapshot, commit


def snapshot_bytes(snapshot: Path) -> int:
    return sum(p.stat().st_size for p in snapshot.rglob("*") if p.is_file())
