"""RG and RA: image-to-image generation that starts from a real or a retrieved image.

Real guidance (He et al. 2023) replaces the initial noise by a noised real image of the class;
GenBench's retrieval augmented strategy gives the model retrieved images of the class as image
prompts. Both are run here as SDEdit-style image-to-image: the reference image is encoded, noised
to `strength` (0: unchanged, 1: pure noise) and denoised with the class prompt for
`int(steps * strength)` steps, through diffusers' image-to-image pipeline built from the same
components as the text-to-image one (`AutoPipelineForImage2Image.from_pipe`).

Reference sets, by class index:
- RG: the k-shot originals (data/<dataset>/prepared/original); image i of a class starts from
  real image i mod k, in manifest order;
- RA: an image set directory in the kit's layout (shards + manifest.parquet with class_index),
  or a folder with one sub-folder per class named by class name or class index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from genbench import storage
from genbench.datasets.images import decode
from genbench.errors import GenBenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True, eq=False)
class ReferenceImage:
    """A real or retrieved image a generation can start from, named by key and content hash."""

    key: str
    sha256: str
    image: np.ndarray


def references_from_image_set(images: np.ndarray, manifest, num_classes: int) -> dict[int, list[ReferenceImage]]:
    """Per class, the images of a loaded image set (uint8 array + manifest rows) in manifest order."""
    refs: dict[int, list[ReferenceImage]] = {c: [] for c in range(num_classes)}
    for img, (_, row) in zip(images, manifest.iterrows()):
        cls = int(row["class_index"])
        if 0 <= cls < num_classes:
            refs[cls].append(ReferenceImage(key=str(row["key"]), sha256=str(row["sha256"]), image=img))
    return refs


def references_from_folder(directory: str | Path, classnames: list[str]) -> dict[int, list[ReferenceImage]]:
    """Per class, the images in `directory/<class name or index>/` in file-name order; keys are
    the paths relative to `directory`."""
    directory = Path(directory)
    refs: dict[int, list[ReferenceImage]] = {}
    for cls, name in enumerate(classnames):
        folder = next((directory / n for n in (name, str(cls), f"{cls:03d}") if (directory / n).is_dir()), None)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder else []
        refs[cls] = []
        for path in files:
            data = path.read_bytes()
            image = np.asarray(decode(data).convert("RGB"), dtype=np.uint8)
            refs[cls].append(ReferenceImage(key=path.relative_to(directory).as_posix(), sha256=storage.sha256_bytes(data), image=image))
    return refs


def load_references(directory: str | Path, classnames: list[str]) -> dict[int, list[ReferenceImage]]:
    """Reference images by class from an image set directory or a per-class folder tree."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GenBenchError(f"reference image directory {str(directory)!r} not found; give an image set "
                            "(shards + manifest.parquet) or a folder with one sub-folder per class")
    if (directory / storage.MANIFEST).is_file():
        images, manifest = storage.load_image_set(directory)
        return references_from_image_set(images, manifest, len(classnames))
    return references_from_folder(directory, classnames)


def check_every_class(refs: dict[int, list[ReferenceImage]], classnames: list[str], where: str, strategy: str) -> None:
    missing = [classnames[c] for c in range(len(classnames)) if not refs.get(c)]
    if missing:
        raise GenBenchError(f"strategy {strategy} needs reference images of every class, but {where} has none for "
                            f"{len(missing)} class(es), first {missing[0]!r}")


def init_image(image: np.ndarray, width: int, height: int) -> Image.Image:
    """The reference image as the pipeline's start: RGB, resized (bicubic) to the output size."""
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    return pil if pil.size == (width, height) else pil.resize((width, height), Image.BICUBIC)


def image_to_image_pipeline(pipe):
    """The image-to-image pipeline sharing `pipe`'s components (no new weights are loaded)."""
    from diffusers import AutoPipelineForImage2Image

    try:
        img2img = AutoPipelineForImage2Image.from_pipe(pipe)
    except (ValueError, KeyError) as exc:
        raise GenBenchError(f"{type(pipe).__name__} has no image-to-image counterpart in diffusers, so RG/RA cannot "
                            f"run with it ({str(exc).splitlines()[0][:120]}); use a Stable Diffusion family model") from exc
    img2img.set_progress_bar_config(disable=True)
    return img2img
