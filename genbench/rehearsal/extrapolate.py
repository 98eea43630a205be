"""The real run's cost extrapolated from a rehearsal's ledger.

`genbench cost estimate --scale STAGE=FACTOR` scales the rehearsal's ledger rows, stage by stage,
by how much more work one image (or one class) takes at the profile's real sizes than at the
overlay's, then prices the real image counts (classes of the profile's datasets x images per
class) with those scaled rows. The factors and what they assume are returned as text to print
beside it.
"""

from __future__ import annotations

from genbench.datasets import get_dataset


def _pixels(section: dict, *keys: str) -> int:
    values = [section[k] for k in keys]
    return values[0] * values[-1]


def stage_factors(real: dict, rehearsed: dict) -> dict[str, tuple[float, str]]:
    """Stage -> (factor on its measured cost, why). Stages not listed keep factor 1."""
    g_real, g_reh = real["generate"], rehearsed["generate"]
    i_real, i_reh = real["invert"], rehearsed["invert"]
    gen = (g_real["steps"] / g_reh["steps"]) * (_pixels(g_real, "height", "width") / _pixels(g_reh, "height", "width"))
    # textual inversion grows with classes, not images; its ledger share is per generated image
    ti = ((i_real["steps"] / i_reh["steps"]) * (i_real["resolution"] / i_reh["resolution"]) ** 2
          * (g_reh["images_per_class"] / g_real["images_per_class"]))
    return {
        "generate": (gen, f"x{gen:.4g} per image: denoising steps {g_reh['steps']} -> {g_real['steps']}, "
                          f"{g_reh['height']}x{g_reh['width']} -> {g_real['height']}x{g_real['width']} px "
                          "(cost taken as linear in steps and pixels)"),
        "invert": (ti, f"x{ti:.4g} per generated image: TI steps {i_reh['steps']} -> {i_real['steps']} per class at "
                       f"{i_reh['resolution']} -> {i_real['resolution']} px, spread over "
                       f"{g_real['images_per_class']} instead of {g_reh['images_per_class']} images per class"),
    }


def real_targets(real: dict) -> dict[str, int]:
    """Images of the real run per data type, over all the profile's datasets."""
    classes = sum(get_dataset(name).num_classes for name in real["datasets"])
    return {"generated": classes * real["generate"]["images_per_class"] * len(real["generate"]["strategies"]),
            "retrieved": classes * real["retrieve"]["shots"],
            "original": classes * real["prepare"]["shots"]}


def extrapolation(real: dict, rehearsed: dict) -> tuple[dict[str, tuple[float, str]], dict[str, int], list[str]]:
    """What `genbench cost estimate` needs to price the real run from the rehearsal's ledger: the
    stage factors (with why), the real image counts per data type, and the assumptions."""
    factors = stage_factors(real, rehearsed)
    targets = real_targets(real)
    classes = sum(get_dataset(name).num_classes for name in real["datasets"])
    assumptions = [
        f"the real run: {len(real['datasets'])} datasets, {classes:,} classes; generated = classes x "
        f"{real['generate']['images_per_class']} images per class x {len(real['generate']['strategies'])} strategies, "
        f"retrieved = classes x {real['retrieve']['shots']}, original = classes x {real['prepare']['shots']}",
        *(f"{stage}: {why}" for stage, (_, why) in factors.items()),
        "every other stage: USD per image as measured in the rehearsal (index build on the stand-in pool, "
        "not on the profile's real pool)",
        "prices: the hardware this rehearsal ran on, priced with the profile's snapshot; stand-in models "
        "(small configs unless --full-size-generator) run faster than the real ones, so this is an extrapolation, "
        "not a quote",
    ]
    return factors, targets, assumptions
