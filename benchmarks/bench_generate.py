"""Images per second of the generate stage's library path against a bare diffusers call.

    python benchmarks/bench_generate.py                    # tiny CPU model (the embedded default)
    python benchmarks/bench_generate.py --sd21             # with CUDA: also the SD 2.1 architecture
    python benchmarks/bench_generate.py --sd21 --sd21-device cpu --sizes 64 --sd21-steps 1 --images 2
                                                           # (checks the SD 2.1 wiring on a CPU)

Method: the same pipeline object, prompts ("a photo of {class}"), per-image seeds, batch size,
steps, guidance and size on both sides.
- kit: what `genbench generate` runs per dataset: plan_jobs, shards_of, shard_plan_hash and
  run_shards with an ImageMaker into a fresh directory (uint8 conversion, PNG encoding, tar
  shards and sidecars written atomically with fsync);
- bare: `pipe(prompt=[...], generator=[...], output_type="np")` over the same batches.
One warm-up run of each, then `--repeats` runs alternating which goes first; CUDA is
synchronised around each timed run. Medians are compared: ratio = kit images/s / bare images/s
(target >= 0.95). The best run of each is compared too, and every run's seconds are printed: on a
shared machine the load of others moves single runs by far more than the kit's overhead.

With --sd21 on a GPU, Stable Diffusion 2.1's UNet, VAE and text encoder are built from their
published configurations (genbench.generators.sd2; SD 2.1 768-v: v-prediction, DDIM) with random
weights, which cost the same compute as the real ones, in float16. For each --sizes it prints
seconds per image and USD per image at the price snapshot's A100 spot price
(cost.prices.load_snapshot("paper-2023"): Azure NC24ads A100 v4 spot, 1.47 USD/h). The seconds
are this machine's: on another GPU than an A100 the USD figure is "this GPU's time at the A100
price", said so in the output.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from genbench.datasets import get_dataset  # noqa: E402
from genbench.generation import GenerationSettings, ImageMaker, plan_jobs, run_shards, shard_plan_hash, shards_of  # noqa: E402
from genbench.generators import load_pipeline, weights_sha256  # noqa: E402
from genbench.generators.sd2 import sd21_scheduler_config, sd21_text_config, sd21_unet_config, sd21_vae_config  # noqa: E402


def build_sd21_random(device: str, dtype: torch.dtype):
    """The SD 2.1 pipeline architecture with seeded random weights (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from genbench.generators.tokenizer import load_clip_tokenizer, write_clip_tokenizer_files

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(write_clip_tokenizer_files(tmp))
    pipe = StableDiffusionPipeline(
        unet=UNet2DConditionModel(**sd21_unet_config()),
        vae=AutoencoderKL(**sd21_vae_config()),
        text_encoder=CLIPTextModel(CLIPTextConfig(**sd21_text_config())),
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**sd21_scheduler_config()),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def kit_run(pipe, images: int, settings: GenerationSettings, device: str, shard_size: int) -> float:
    """Seconds for the generate stage's library path: plan -> shards -> run_shards (PNG, tar, sidecars)."""
    generator_id = {"generator": "bench", "weights_sha256": "-"}
    with tempfile.TemporaryDirectory() as out:
        synchronize(device)
        t0 = time.perf_counter()
        jobs = plan(images)
        shards = shards_of(jobs, shard_size)
        hashes = [shard_plan_hash(s, generator_id, settings) for s in shards]
        maker = ImageMaker(pipe, settings, device=device)
        run_shards(out, shards, list(range(len(shards))), maker, generator_id, hashes, progress=False)
        synchronize(device)
        return time.perf_counter() - t0


def bare_run(pipe, jobs, settings: GenerationSettings, device: str) -> float:
    """Seconds for the same images from plain pipeline calls."""
    synchronize(device)
    t0 = time.perf_counter()
    for start in range(0, len(jobs), settings.batch_size):
        batch = jobs[start : start + settings.batch_size]
        pipe(prompt=[j.prompt for j in batch], height=settings.height, width=settings.width,
             num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
             generator=[torch.Generator(device="cpu").manual_seed(j.seed) for j in batch], output_type="np")
    synchronize(device)
    return time.perf_counter() - t0


def plan(images: int):
    ds = get_dataset("digits")
    return plan_jobs(ds, ["ST"], -(-images // ds.num_classes), global_seed=0)[:images]


def compare(pipe, settings: GenerationSettings, images: int, repeats: int, device: str, shard_size: int) -> dict:
    jobs = plan(images)
    kit_run(pipe, images, settings, device, shard_size)
    bare_run(pipe, jobs, settings, device)
    kit, bare = [], []
    for r in range(repeats):
        if r % 2:
            bare.append(bare_run(pipe, jobs, settings, device))
            kit.append(kit_run(pipe, images, settings, device, shard_size))
        else:
            kit.append(kit_run(pipe, images, settings, device, shard_size))
            bare.append(bare_run(pipe, jobs, settings, device))
    kit_ips, bare_ips = images / statistics.median(kit), images / statistics.median(bare)
    return {"images": images, "kit_images_per_s": kit_ips, "bare_images_per_s": bare_ips, "ratio": kit_ips / bare_ips,
            "ratio_of_best": min(bare) / min(kit), "kit_s": kit, "bare_s": bare}


def fmt(seconds: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in seconds) + "]"


def machine(device: str) -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU"
    return f"{cpu}, {torch.get_num_threads()} torch threads, {gpu}; torch {torch.__version__}"


def a100_spot_price() -> tuple[float, str]:
    from cost.prices import load_snapshot

    snap = load_snapshot("paper-2023")
    row = next(r for r in snap.rows if r.gpu_model and "A100" in r.gpu_model and r.pricing == "spot")
    return row.usd_per_hour, f"{row.name} {row.pricing} {row.usd_per_hour} USD/h, {snap.label()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=32, help="tiny model image side")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sd21", action="store_true", help="also the SD 2.1 architecture (random weights)")
    parser.add_argument("--sd21-device", default="cuda")
    parser.add_argument("--sd21-steps", type=int, default=50)
    parser.add_argument("--sd21-batch", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 768])
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()

    device = "cpu"
    print(f"machine: {machine(device)}")
    pipe = load_pipeline("tiny-sd", image_size=args.size)
    pipe.set_progress_bar_config(disable=True)
    settings = GenerationSettings(args.size, args.size, args.steps, 5.0, args.batch_size)
    tiny = compare(pipe, settings, args.images, args.repeats, device, shard_size=args.batch_size * 4)
    print(f"tiny-sd (weights {weights_sha256(pipe)[:12]}) on CPU, {args.size} px, {args.steps} steps, batch {args.batch_size}, "
          f"{args.images} images x {args.repeats} repeats:")
    print(f"  kit  {tiny['kit_images_per_s']:.2f} images/s   bare {tiny['bare_images_per_s']:.2f} images/s   "
          f"kit/bare ratio {tiny['ratio']:.3f} (target >= 0.95; best run against best run {tiny['ratio_of_best']:.3f})")
    print(f"  seconds per run, kit {fmt(tiny['kit_s'])}, bare {fmt(tiny['bare_s'])}")
    results = {"machine": machine(device), "tiny": tiny}

    if args.sd21:
        dev = args.sd21_device
        if dev.startswith("cuda") and not torch.cuda.is_available():
            print("SD 2.1: skipped, no CUDA device (pass --sd21-device cpu to check the wiring on a CPU)")
        else:
            dtype = torch.float16 if dev.startswith("cuda") else torch.float32
            sd = build_sd21_random(dev, dtype)
            usd_h, price = a100_spot_price()
            gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "CPU"
            print(f"SD 2.1 architecture, random weights, {dtype}, {args.sd21_steps} DDIM steps, guidance 7.5, "
                  f"batch {args.sd21_batch}, on {gpu}; priced at {price}")
            results["sd21"] = {}
            for size in args.sizes:
                if dev.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                s = GenerationSettings(size, size, args.sd21_steps, 7.5, args.sd21_batch)
                row = compare(sd, s, args.images if not dev.startswith("cuda") else max(args.images, 2 * args.sd21_batch),
                              max(1, args.repeats // 2), dev, shard_size=args.sd21_batch * 4)
                sec = 1.0 / row["kit_images_per_s"]
                row.update({"s_per_image": sec, "usd_per_image": sec * usd_h / 3600,
                            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if dev.startswith("cuda") else None})
                results["sd21"][size] = row
                note = "" if "A100" in gpu else f" ({gpu} seconds at the A100 price)"
                print(f"  {size} px: {sec:.3f} s/image, {row['usd_per_image']:.2e} USD/image{note}; "
                      f"kit/bare {row['ratio']:.3f}" + (f"; peak {row['peak_gib']:.1f} GiB" if row["peak_gib"] else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
