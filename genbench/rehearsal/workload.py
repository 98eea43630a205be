"""The work a profile asks of each CLIP tower, counted from its params before anything runs, and
an estimate of how long it takes here.

Images through an image tower and texts through a text tower are counted stage by stage as the
stages form them: embed encodes every image set (test, original, generated, retrieved, the
original pool) with embed.model and each of embed.backbones, and the class prompts (classes x
templates, one batch per class); quality encodes the generated images again when its CLIP score
model is none of those (else it reads embed's features back); finetune trains on `shots` images
per class of each set for `epochs` (forward and backward: 3 forward passes each) and scores the
test set; the CF filter encodes its candidates and prompts; index encodes every pool caption;
retrieve every class's template queries and bare name through the index model and re-scores the
name plus `max(top_k, mts_top_k)` hits per class in the MTS space. A text costs the positions of
its batch's longest text (genbench.features trims the rest). Not counted: the stand-in
generator, captioner and sentence models and every stage's start-up, which `stage_overhead_s`
stands for.

Seconds come from `rates`: seconds per image and per text position of each tower, measured with
`measure_rates` (random-weight open_clip models of the same architectures on this machine), plus
`stage_overhead_s` per DVC stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from genbench.datasets import get_dataset

TRAIN_PASSES = 3  # a training step's forward and backward cost, in forward passes


@dataclass(frozen=True)
class Work:
    """One stage's use of one CLIP tower: `items` images, or texts taking `positions` token positions."""

    stage: str
    model: str
    tower: str  # image | text
    items: int
    positions: int = 0


def clip_id(model: str, pretrained: str | None) -> str:
    return f"{model}|{pretrained}"


def image_sets(params: dict, name: str) -> dict[str, int]:
    """Images per set of one dataset as the stages will see them (test capped per class when
    prepare.test_per_class is set; otherwise the stand-in's test images per class)."""
    spec = get_dataset(name)
    classes = spec.num_classes
    prepare, generate = params["prepare"], params["generate"]
    test_per_class = prepare.get("test_per_class") or (params.get("standin") or {}).get("test_per_class", 1)
    sets = {"test": classes * test_per_class, "original": classes * prepare["shots"],
            "generated": classes * generate["images_per_class"] * len(generate["strategies"]),
            "retrieved": classes * params["retrieve"]["shots"]}
    if prepare.get("pool_shots"):
        sets["original_pool"] = classes * prepare["pool_shots"]
    return sets


def _template_texts(name: str, cap: int | None) -> list[list[str]]:
    """Per class, its prompts: the dataset's templates, the first `cap` (prepare.templates) when set."""
    spec = get_dataset(name)
    return [[t.format(c=c) for t in spec.templates[:cap]] for c in spec.classnames]


def _positions(batches: list[list[str]], length) -> tuple[int, int]:
    """(texts, positions) of texts encoded in `batches`: each batch costs len x its longest text."""
    texts = sum(len(b) for b in batches)
    return texts, sum(len(b) * max(length(t) for t in b) for b in batches if b)


def _chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i:i + size] for i in range(0, len(texts), size)]


def dataset_work(params: dict, name: str, length) -> list[Work]:
    """The CLIP work of one dataset's stages; `length(text)` is its token count with start and end."""
    out: list[Work] = []
    sets = image_sets(params, name)
    embed, quality, finetune = params["embed"], params.get("quality") or {}, params.get("finetune") or {}
    prompts = _template_texts(name, params["prepare"].get("templates"))
    texts, positions = _positions(prompts, length)
    embedded = [clip_id(e["model"], e.get("pretrained")) for e in [embed, *embed.get("backbones", [])]]
    for model in embedded:
        out += [Work("embed", model, "image", sum(sets.values())), Work("embed", model, "text", texts, positions)]
    if quality.get("clip_score_model"):
        model = clip_id(quality["clip_score_model"], quality.get("clip_score_pretrained"))
        classes = [f"a photo of a {c}" for c in get_dataset(name).classnames]
        out += [Work("quality", model, "image", 0 if model in embedded else sets["generated"]),
                Work("quality", model, "text", *_positions(_chunks(classes, quality.get("batch_size", 256)), length))]
    if finetune:
        classes = get_dataset(name).num_classes
        model = clip_id(finetune["model"], finetune.get("pretrained"))
        for _ in finetune.get("sets", []):
            train = classes * finetune["shots"]
            out.append(Work("finetune", model, "image", train * (1 + TRAIN_PASSES * finetune["epochs"]) + sets["test"]))
    generate = params["generate"]
    cf = [s for s in generate["strategies"] if "CF" in s.split("+")]
    if cf:
        model = clip_id(generate["cf_model"], generate.get("cf_pretrained"))
        per_class = int(generate["images_per_class"] * (1 + generate.get("cf_oversample", 0)))
        out += [Work("generate", model, "image", get_dataset(name).num_classes * per_class * len(cf)),
                Work("generate", model, "text", texts, positions)]
    retrieve, index = params["retrieve"], params["index"]
    out.append(Work("retrieve", clip_id(index["model"], index.get("pretrained")), "text",
                    *_positions(prompts + [[c] for c in get_dataset(name).classnames], length)))
    if retrieve.get("mts_model"):
        depth = max(retrieve["top_k"], retrieve["mts_top_k"])
        classes = get_dataset(name).num_classes
        caption = max(3, length(f"a photo of a {get_dataset(name).classnames[0]}"))
        out.append(Work("retrieve", clip_id(retrieve["mts_model"], retrieve.get("mts_pretrained")), "text",
                        classes * (1 + depth), classes * (1 + depth) * caption))
    return out


def pool_work(params: dict, captions: list[str], length) -> Work:
    index = params["index"]
    return Work("index", clip_id(index["model"], index.get("pretrained")), "text",
                *_positions(_chunks(captions, index.get("batch_size", 256)), length))


def total_work(params: dict, captions: list[str], length) -> list[Work]:
    out = [pool_work(params, captions, length)]
    for name in params["datasets"]:
        out += dataset_work(params, name, length)
    return out


def by_tower(works: list[Work]) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(stage, model, tower) -> (items, positions), summed over datasets."""
    out: dict[tuple[str, str, str], tuple[int, int]] = {}
    for w in works:
        items, positions = out.get((w.stage, w.model, w.tower), (0, 0))
        out[(w.stage, w.model, w.tower)] = (items + w.items, positions + w.positions)
    return out


def seconds(works: list[Work], rates: dict[tuple[str, str], float]) -> float:
    """Tower seconds of `works` at `rates` ((model, tower) -> seconds per image or per text position)."""
    return sum(w.items * rates[(w.model, "image")] if w.tower == "image" else w.positions * rates[(w.model, "text")]
               for w in works)


def measure_rates(models: list[str], *, images: int = 4, texts: int = 32, tokens: int = 16) -> dict[tuple[str, str], float]:
    """Seconds per image and per text position of each `MODEL|pretrained`, timed on random-weight
    open_clip models of the same architecture (the same work as the real weights) at batch
    `images` (224 px) and `texts` texts of `tokens` tokens, after one warm-up call."""
    import open_clip
    import torch

    from genbench.features import _encode_tokens

    out = {}
    for model_id in models:
        name = model_id.split("|")[0]
        torch.manual_seed(0)
        model = open_clip.create_model(name).eval()
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        pixels = torch.randn(images, 3, size, size)
        words = " ".join(["photo"] * (tokens - 2))
        batch = open_clip.get_tokenizer(name)([words] * texts)
        with torch.no_grad():
            model.encode_image(pixels[:1])
            started = time.perf_counter()
            model.encode_image(pixels)
            out[(model_id, "image")] = (time.perf_counter() - started) / images
            _encode_tokens(model, batch[:2])
            started = time.perf_counter()
            _encode_tokens(model, batch)
            out[(model_id, "text")] = (time.perf_counter() - started) / (texts * tokens)
        del model
    return out


def pool_captions(params: dict, sizes: dict) -> list[str]:
    """The captions of the stand-in pool the rehearsal writes for `params['datasets']`."""
    from genbench.rehearsal.data import _pool_records

    return [r["caption"] for r in _pool_records(list(params["datasets"]), sizes["pool_per_class"], 4, sizes.get("seed", 0))]


def token_length(model_ids: list[str]):
    """len(tokens) of a text under the first model's tokenizer, start and end tokens included (the
    OpenAI CLIPs share one BPE), cached."""
    import functools

    import open_clip

    tokenizer = open_clip.get_tokenizer(model_ids[0].split("|")[0])
    return functools.lru_cache(maxsize=None)(lambda text: int((tokenizer([text])[0] != 0).sum()))


def estimate_lines(works: list[Work], rates: dict, stages: int, overhead_s: float) -> tuple[list[str], float]:
    """The printed estimate (one line per stage, model and tower) and its total seconds."""
    lines = [f"{'stage':10s} {'model':20s} {'tower':5s} {'items':>9s} {'positions':>10s} {'est. s':>8s}"]
    total = 0.0
    for (stage, model, tower), (items, positions) in sorted(by_tower(works).items()):
        s = seconds([Work(stage, model, tower, items, positions)], rates)
        total += s
        lines.append(f"{stage:10s} {model:20s} {tower:5s} {items:9,d} {positions if tower == 'text' else '':>10} {s:8.0f}")
    lines.append(f"CLIP towers {total:,.0f} s; {stages} DVC stages x {overhead_s:.0f} s (start-up and every other model) "
                 f"{stages * overhead_s:,.0f} s; total {(total + stages * overhead_s) / 60:,.0f} min")
    return lines, total + stages * overhead_s
