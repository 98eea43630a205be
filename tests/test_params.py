import pytest

from genbench.errors import GenBenchError
from stages import generate, prepare
from stages.frame.params import validate_section


def test_defaults_fill_in():
    out = validate_section({"seed": 3}, "prepare", prepare.SCHEMA)
    assert out["shots"] == 16 and out["image_size"] == 32 and out["seed"] == 3


def test_unknown_key_is_named():
    with pytest.raises(GenBenchError, match=r"'prepare\.shotz' does not exist"):
        validate_section({"shotz": 3}, "prepare", prepare.SCHEMA)


@pytest.mark.parametrize("shots", [0, -2])
def test_non_positive_shots(shots):
    with pytest.raises(GenBenchError, match=rf"'prepare\.shots' = {shots} must be greater than 0"):
        validate_section({"shots": shots}, "prepare", prepare.SCHEMA)


def test_wrong_type_is_named():
    with pytest.raises(GenBenchError, match=r"'generate\.steps' = 'many' must be int"):
        validate_section({"steps": "many"}, "generate", generate.SCHEMA)
    with pytest.raises(GenBenchError, match=r"must be int"):
        validate_section({"steps": True}, "generate", generate.SCHEMA)


def test_int_accepted_for_float():
    assert validate_section({"guidance_scale": 7}, "generate", generate.SCHEMA)["guidance_scale"] == 7.0


# Schema defaults that differ from the embedded profile (params.yaml), each for a stated reason;
# any other default must equal the profile's value (or the key is required).
# - null is the library's own choice (no larger original pool; powers of two), the profile opts
#   in to Figure 3's fuller curves;
# - the model keys default to the built-in tiny models (or the paper's), which tests and
#   library callers use without the bootstrap stage; the profile names the miniature.
DIFFER_FROM_PROFILE = {
    "prepare.pool_shots", "shots.counts", "frontier.datasets", "frontier.cpu_threads",
    "generate.model", "generate.le_model", "generate.cip_model", "generate.cf_model", "generate.cf_pretrained",
    "embed.model", "finetune.model", "quality.model", "index.model", "invert.model", "invert.filter_clip_model",
}


def test_schema_defaults_are_the_embedded_profile_but_for_the_listed_ones():
    from pathlib import Path

    import yaml

    from stages.frame.params import REQUIRED
    from stages.frame.profile_rules import SECTIONS

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    differ = {f"{section}.{key}": (field.default, (params.get(section) or {}).get(key, "absent"))
              for section, (schema, _) in SECTIONS.items() for key, field in schema.items()
              if field.default is not REQUIRED and field.default != (params.get(section) or {}).get(key, REQUIRED)}
    assert set(differ) == DIFFER_FROM_PROFILE, differ


def test_choices_are_checked_once_with_the_allowed_values_named():
    from stages import cler, index

    with pytest.raises(GenBenchError, match=r"'generate\.dtype' = 'float8' must be one of float32, float16, bfloat16"):
        validate_section({"dtype": "float8"}, "generate", generate.SCHEMA)
    with pytest.raises(GenBenchError, match=r"'index\.kind' = 'tree' must be one of auto, flat, ivfpq, hnsw"):
        validate_section({"kind": "tree"}, "index", index.SCHEMA)
    assert validate_section({"ranking": "cosine"}, "cler", cler.SCHEMA)["ranking"] == "cosine"


def test_one_device_rule_and_one_run_first_wording():
    from genbench.devices import device_problem, resolve_device
    from genbench.errors import run_first

    assert [device_problem(d) for d in ("auto", "cpu", "cuda", "cuda:1")] == [None] * 4
    assert device_problem("gpu") == "must be auto, cpu or cuda[:N]"
    assert resolve_device("cpu", "embed.device") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    assert run_first("embed", "digits") == "run the embed stage first (dvc repro embed@digits)"
    assert run_first("index") == "run the index stage first (dvc repro index)"
