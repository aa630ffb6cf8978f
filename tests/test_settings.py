"""Settings: one source for every knob, the model's included, each settable from the environment."""

from __future__ import annotations

import dataclasses

import pytest

from model.config import RecommenderConfig
from stream.settings import Settings


def test_every_model_knob_has_its_own_variable():
    variables = Settings().env()
    for field in dataclasses.fields(RecommenderConfig):
        assert f"STREAMREC_{field.name.upper()}" in variables, field.name


def test_model_and_adapter_names_never_clash():
    own = {f.name for f in dataclasses.fields(Settings)} - {"model"}
    assert not own & {f.name for f in dataclasses.fields(RecommenderConfig)}


def test_environment_round_trip_keeps_every_value():
    changed = Settings().replace(partitions=3, top_k=7, half_lives_s=(60.0, 3600.0), half_life_weights=(0.6, 0.4),
                                 type_weights={"view": 0.5, "click": 1.5, "cart": 2.0, "purchase": 4.0},
                                 sources=("content", "popular"), exclude_seen=False, max_scenes=3,
                                 negative_samples=7, broker="kafka://h:9")
    assert Settings.from_env(changed.env()) == changed


@pytest.mark.parametrize("name, raw, expected", [
    ("STREAMREC_MAX_SCENES", "4", ("max_scenes", 4)),
    ("STREAMREC_NEGATIVE_SAMPLES", "3", ("negative_samples", 3)),
    ("STREAMREC_SOURCES", "content, covisit", ("sources", ("content", "covisit"))),
    ("STREAMREC_TYPE_WEIGHTS", "view=1,click=3,cart=3,purchase=9",
     ("type_weights", {"view": 1.0, "click": 3.0, "cart": 3.0, "purchase": 9.0})),
])
def test_a_model_knob_from_the_environment(name, raw, expected):
    field, value = expected
    assert getattr(Settings.from_env({name: raw}).model, field) == value


def test_a_bad_value_names_its_variable():
    with pytest.raises(ValueError, match="STREAMREC_TOP_K='ten'"):
        Settings.from_env({"STREAMREC_TOP_K": "ten"})
