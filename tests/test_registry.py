"""Registries and value checks: declared types and ranges are checked in one place, and every
error names the config key (list items by index; a union whose value has the right type but
is out of range says so rather than "wrong type")."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pytest

import pyrovae
from pyrovae.errors import ConfigError
from pyrovae.registry import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    Registry,
    Seed,
    check_value,
)


@pytest.mark.parametrize("annotation,value,message", [
    (PositiveInt, 0, "k = 0 must be at least 1"),
    (PositiveInt, -3, "k = -3 must be at least 1"),
    (NonNegativeInt, -1, "k = -1 must be >= 0"),
    (PositiveFloat, 0.0, "k = 0.0 must be positive"),
    (PositiveFloat, -2, "k = -2.0 must be positive"),  # ints are accepted as floats
    (NonNegativeFloat, -0.5, "k = -0.5 must be >= 0"),
    (Annotated[int, Range(min=0, note="0 means all")], -1, "k = -1 must be >= 0 (0 means all)"),
    (Annotated[float, Range(gt=0, lt=0.5)], 0.5, "k = 0.5 must be in (0, 0.5)"),
    (Annotated[float, Range(gt=0, lt=0.5)], 0.0, "k = 0.0 must be in (0, 0.5)"),
])
def test_values_outside_their_declared_range_are_refused(annotation, value, message):
    with pytest.raises(ConfigError) as error:
        check_value(value, annotation, "k")
    assert str(error.value) == message


@pytest.mark.parametrize("annotation", [PositiveFloat, NonNegativeFloat,
                                        Annotated[float, Range(gt=0, lt=0.5)]])
def test_nan_fails_every_declared_range(annotation):
    with pytest.raises(ConfigError, match=r"^k = nan must be "):
        check_value(float("nan"), annotation, "k")


@pytest.mark.parametrize("annotation", [PositiveFloat, NonNegativeFloat, PositiveInt,
                                        Annotated[float, Range(gt=0, lt=0.5)]])
@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinities_fail_every_declared_range(annotation, value):
    """A range holds finite numbers: an infinite learning rate or KL weight is no setting."""
    if annotation is PositiveInt:
        value = 2**62  # ints are never infinite; an integer range with a max bounds them
        check_value(value, annotation, "k")
        with pytest.raises(ConfigError, match=r"^k = \d+ must be >= 0 and at most 4294967295"):
            check_value(value, Seed, "k")
        return
    with pytest.raises(ConfigError, match=rf"^k = {value} must be finite and "):
        check_value(value, annotation, "k")


def test_integers_fit_in_64_bits():
    assert check_value(2**63 - 1, int, "k") == 2**63 - 1
    for value in (2**63, -(2**63) - 1, 10**30):
        with pytest.raises(ConfigError, match=r"^k = -?\d+ must fit in 64 bits"):
            check_value(value, PositiveInt, "k")


def test_range_with_a_maximum_describes_its_bounds_in_full():
    assert Range(min=0, max=2**32 - 1).describe() == ">= 0 and at most 4294967295"
    assert Range(min=1, max=10).describe() == "at least 1 and at most 10"
    assert Range(max=10).describe() == "at most 10"
    assert not Range(min=0, max=10).contains(11) and Range(min=0, max=10).contains(10)


def test_long_values_are_shortened_in_messages():
    with pytest.raises(ConfigError) as error:
        check_value(list(range(10**5)), PositiveFloat, "k")
    assert len(str(error.value)) < 200, str(error.value)


def test_values_inside_their_range_pass_converted():
    assert check_value(5, PositiveInt, "k") == 5
    assert check_value(0, NonNegativeInt, "k") == 0
    value = check_value(2, PositiveFloat, "k")
    assert value == 2.0 and isinstance(value, float)
    assert check_value([1, 2], list[PositiveInt], "k") == (1, 2)


def test_types_are_checked_before_ranges():
    with pytest.raises(ConfigError, match=r"^k = 'many' has the wrong type: expected int, got str"):
        check_value("many", PositiveInt, "k")
    with pytest.raises(ConfigError, match=r"^k = True has the wrong type: expected int"):
        check_value(True, PositiveInt, "k")  # a bool is not a count
    with pytest.raises(ConfigError, match=r"^k = 1\.5 has the wrong type: expected int"):
        check_value(1.5, PositiveInt, "k")


def test_list_items_are_checked_by_index():
    with pytest.raises(ConfigError, match=r"^k\[2\] = 0 must be at least 1$"):
        check_value([64, 32, 0], list[PositiveInt], "k")
    with pytest.raises(ConfigError, match=r"^k = 3 has the wrong type: expected a list"):
        check_value(3, list[PositiveInt], "k")


def test_a_union_reports_the_range_of_the_matching_type():
    scale = PositiveFloat | Literal["learned", "learned_per_pixel"]
    assert check_value(0.5, scale, "scale") == 0.5
    assert check_value("learned", scale, "scale") == "learned"
    with pytest.raises(ConfigError) as error:
        check_value(-1.0, scale, "scale")
    assert str(error.value) == "scale = -1.0 must be positive"
    with pytest.raises(ConfigError, match=r"^scale = 'learnt' has the wrong type: expected "
                       r"float \| Literal\['learned', 'learned_per_pixel'\]"):
        check_value("learnt", scale, "scale")


def test_range_describes_itself():
    assert Range(min=1).describe() == "at least 1"
    assert Range(min=0, note="0: none").describe() == ">= 0 (0: none)"
    assert Range(gt=0).describe() == "positive"
    assert Range(gt=0, lt=0.5).describe() == "in (0, 0.5)"
    assert Range(gt=0, lt=1).contains(0.5) and not Range(gt=0, lt=1).contains(1.0)
    assert not Range(min=0).contains(float("nan"))


def test_registry_checks_parameters_and_prefixes_constructor_errors_with_the_key():
    registry: Registry[object] = Registry("widget", context=("size",))

    @registry.register("box")
    class Box:
        def __init__(self, *, size: int, sides: PositiveInt = 4,
                     hole: NonNegativeFloat = 0.0) -> None:
            if hole >= size:
                raise ConfigError(f"hole = {hole} must be smaller than the size {size}")
            self.size, self.sides, self.hole = size, sides, hole

    assert registry.names() == ["box"] and "box" in registry and Box.type_name == "box"
    assert set(registry.parameters("box")) == {"sides", "hole"}  # size is context
    assert registry.resolve("box", "w") == {"type": "box", "sides": 4, "hole": 0.0}
    built = registry.build({"type": "box", "sides": 6}, "w", size=10)
    assert (built.size, built.sides, built.hole) == (10, 6, 0.0)
    with pytest.raises(ConfigError, match=r"^w\.sides = 0 must be at least 1$"):
        registry.build({"type": "box", "sides": 0}, "w", size=10)
    with pytest.raises(ConfigError) as error:
        registry.build({"type": "box", "hole": 12.0}, "w", size=10)
    assert str(error.value) == "w.type = 'box': hole = 12.0 must be smaller than the size 10"
    with pytest.raises(ConfigError, match=r"^w\.type = 'ball' is not a known widget; valid "
                       r"choices: box$"):
        registry.build("ball", "w", size=1)
    with pytest.raises(ConfigError, match=r"^w\.size is not a parameter of widget 'box'"):
        registry.resolve({"type": "box", "size": 3}, "w")
    with pytest.raises(ValueError, match="widget 'box' is already registered"):
        registry.register("box")(Box)


def test_a_component_can_be_unregistered_and_registered_again():
    registry: Registry[object] = Registry("gadget")

    @registry.register("knob")
    class Knob:
        def __init__(self, *, turns: PositiveInt = 1) -> None:
            self.turns = turns

    assert registry.unregister("knob") is Knob and "knob" not in registry
    with pytest.raises(ConfigError, match=r"'knob' is not a known gadget"):
        registry.unregister("knob")
    registry.register("knob")(Knob)  # the name is free again
    assert registry.build("knob", "g").turns == 1


def test_configs_find_the_registries_by_kind():
    """pyrovae.config imports no component: it asks for each registry by its kind."""
    assert Registry.of_kind("prior") is pyrovae.PRIORS
    assert Registry.of_kind("objective") is pyrovae.OBJECTIVES
    assert Registry.of_kind("dataset") is pyrovae.DATASETS
    Registry("prior")  # another registry of a kind does not replace the first
    assert Registry.of_kind("prior") is pyrovae.PRIORS
