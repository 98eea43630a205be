"""Safetensors only: checks on a local model folder before any library is let loose on it.

`check_model_folder(folder, what)` refuses a folder whose weights are pickles only (.bin, .pt,
.pth, .ckpt: loading them runs arbitrary code) with the command that converts them, and proves
every .safetensors file whole (its header parses and its tensors' bytes reach the end of the
file exactly), so a truncated file is reported as truncated, not as a model "not found".
Loaders then pass `use_safetensors=True`, so a library never falls back to a pickle.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from genbench.errors import DataFileError, GenBenchError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONVERT_HINT = ("convert it once where you trust the file: load it with its library and save_pretrained(..., "
                "safe_serialization=True) (diffusers and transformers), or safetensors.torch.save_file(torch.load(F, weights_only=True), "
                "F.replace('.bin', '.safetensors'))")


def check_safetensors_file(path: Path) -> None:
    """Raise DataFileError unless `path` is a complete safetensors file."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                raise ValueError(f"header of {header_len} bytes in a file of {size}")
            header = json.loads(fh.read(header_len))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"is truncated or corrupt (not a whole safetensors file: {exc})") from None
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        raise DataFileError(path, f"is truncated or corrupt: {size} bytes where its header needs {expected}")


def check_model_folder(folder: str | Path, what: str) -> None:
    """Refuse pickle-only weights and damaged safetensors anywhere in a local model folder."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.is_file()]
    for path in sorted(p for p in files if p.suffix == ".safetensors"):
        check_safetensors_file(path)
    safe_dirs = {p.parent for p in files if p.suffix == ".safetensors"}
    pickles = sorted(p for p in files if p.suffix in PICKLE_SUFFIXES and p.parent not in safe_dirs)
    if pickles:
        raise GenBenchError(
            f"{what} folder {str(folder)!r} holds pickle weights only ({pickles[0].relative_to(folder)}); the kit "
            f"loads safetensors only, as a pickle can run code when loaded; {CONVERT_HINT}")
