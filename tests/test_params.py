import pytest

from genbench.errors import GenBenchError
from stages import generate, prepare
from stages.params import validate_section


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
