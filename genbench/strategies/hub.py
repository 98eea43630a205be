"""Loading a transformers model the way every model in the kit is loaded: a built-in tiny
stand-in by name, a local `save_pretrained` folder, or a hub id pinned by revision (from the
Hugging Face cache, HF_HOME, or the hub when it can be reached)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from genbench.errors import GenBenchError
from genbench.weights import check_model_folder

T = TypeVar("T")


def load_pretrained(name: str, revision: str | None, what: str, builtin: dict[str, Callable[[], T]],
                    load: Callable[..., T], *, hint: str | None = None) -> T:
    """`builtin[name]()` if it is a built-in name; otherwise `load(path_or_id, **kwargs)` with
    `local_files_only=True` for a folder (safetensors only: `check_model_folder` first; `load`
    passes use_safetensors=True to the model), or `revision=...` for a hub id. Failures become one
    GenBenchError saying where the model was looked for and how to get it; `hint` is its last
    advice (default: a local folder or one of `builtin`)."""
    if name in builtin:
        return builtin[name]()
    local = Path(name)
    if local.is_dir():
        check_model_folder(local, what)
    try:
        if local.is_dir():
            return load(str(local), local_files_only=True)
        return load(name, revision=revision)
    except (OSError, ValueError, EnvironmentError) as exc:
        where = f"local folder {str(local)!r}" if local.is_dir() else "the Hugging Face cache (HF_HOME) and the hub"
        hint = hint or f"give a local save_pretrained folder (built-in offline stand-ins: {', '.join(builtin)})"
        raise GenBenchError(
            f"cannot load {what} {name!r} (revision {revision!r}): not found in {where} ({str(exc).splitlines()[0][:160]}); "
            f"download it on a connected machine (huggingface-cli download MODEL --revision REV) into HF_HOME, or {hint}"
        ) from exc

