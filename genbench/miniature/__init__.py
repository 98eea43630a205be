"""Miniature models for the embedded default: a tiny CLIP and a tiny Stable-Diffusion-layout
text-to-image model, trained in a few CPU minutes on the digits training split and saved in the
formats real weights use, so the rest of the kit loads them like any other model."""

from genbench.miniature.train_clip import MINIATURE_CLIP_CONFIG, train_clip
from genbench.miniature.train_diffusion import train_diffusion

__all__ = ["MINIATURE_CLIP_CONFIG", "train_clip", "train_diffusion"]
