import json

import pytest

from search_space import BlockSpec, EnsembleSpec, MobileNetSpec, SpecError, WideResNetSpec, from_json, to_json, zoo
from search_space.spec import canonical_json, spec_id


def test_ids_are_pinned():
    # If either changes, every cached member and every run directory loses its meaning.
    assert zoo.get("mnasnet-a1").id == PINNED["mnasnet-a1"]
    assert zoo.get("wrn-16-8").id == PINNED["wrn-16-8"]


PINNED = {
    "mnasnet-a1": "6cfdfcef450c6a69f3582662e9e350085358cb35e94a270e1b1b7ef7556c8a74",
    "wrn-16-8": "f78855a0c3bbe0dee887979627ef9c710569c20d1d95eccc5e728d0fe93d9932",
}


@pytest.mark.parametrize("name", ["mnasnet-a1", "mobilenetv2", "efficientnet-b3", "wrn-28-10", "mnasnet-small"])
def test_json_round_trip(name):
    spec = zoo.get(name)
    back = from_json(to_json(spec))
    assert back == spec and back.id == spec.id
    assert canonical_json(back) == canonical_json(spec)


def test_ensemble_round_trip_and_id_depends_on_members():
    e = EnsembleSpec((zoo.get("mnasnet-a1", resolution=168), zoo.get("wrn-16-2")))
    assert from_json(to_json(e)) == e
    assert EnsembleSpec((zoo.get("wrn-16-2"), zoo.get("mnasnet-a1", resolution=168))).id != e.id
    assert spec_id(e) == e.id and len(e.id) == 64


def test_specs_are_frozen():
    spec = zoo.get("mobilenetv2")
    with pytest.raises(Exception):
        spec.resolution = 96  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, field", [
    (dict(repeats=0), "block.repeats"), (dict(kernel=4), "block.kernel"), (dict(strides=3), "block.strides"),
    (dict(se_ratio=1.5), "block.se_ratio"), (dict(skip="sometimes"), "block.skip"),
    (dict(conv_op="conv", expand=6), "block.expand"), (dict(out_filters=0), "block.out_filters"),
])
def test_invalid_block_names_the_field(kwargs, field):
    base = dict(repeats=1, kernel=3, strides=1, expand=6, in_filters=16, out_filters=24)
    base.update(kwargs)
    with pytest.raises(SpecError, match=f"^{field}"):
        BlockSpec(**base)


def test_mbconv_without_expansion_is_the_separable_conv():
    b = BlockSpec(repeats=1, kernel=3, strides=1, expand=1, in_filters=8, out_filters=8, conv_op="mbconv")
    assert b.conv_op.value == "sepconv"


def test_invalid_network_fields():
    blocks = (BlockSpec(1, 3, 1, 6, 32, 16), BlockSpec(1, 3, 2, 6, 24, 24))
    with pytest.raises(SpecError, match=r"^blocks\[1\].in_filters"):
        MobileNetSpec(blocks=blocks)
    with pytest.raises(SpecError, match="^resolution"):
        MobileNetSpec(blocks=blocks[:1], resolution=4)
    with pytest.raises(SpecError, match="^depth"):
        WideResNetSpec(depth=17, width=2)
    with pytest.raises(SpecError, match="^members"):
        EnsembleSpec(())


@pytest.mark.parametrize("text, field", [
    ("[1,2]", "spec"), ('{"family": "resnet"}', "family"), ('{"family": "wrn", "depth": 16}', "width"),
    ('{"family": "mobile", "blocks": ["r1_k3_s11_e1_i32_o16"], "colour": 1}', "colour"),
    ('{"family": "mobile", "blocks": ["r1_k3_s11_e1_i32_o16_zz"]}', r"blocks\[0\]"), ("{", "spec JSON"),
])
def test_bad_json_names_the_problem(text, field):
    with pytest.raises(SpecError, match=f"^{field}"):
        from_json(text)


def test_blocks_may_be_objects_in_json():
    d = json.loads(to_json(zoo.get("mobilenetv2")))
    d["blocks"][0] = {"repeats": 1, "kernel": 3, "strides": 1, "expand": 1, "in_filters": 32, "out_filters": 16}
    assert from_json(json.dumps(d)) == zoo.get("mobilenetv2")
