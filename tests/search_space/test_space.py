import numpy as np
import pytest

from search_space import EnsembleSpec, MnasNetSpace, SpecError, from_json, to_json
from search_space.layers import layer_plan
from search_space.space import RESOLUTION_FRACTIONS


def test_fifty_decisions_per_member_and_size():
    space = MnasNetSpace(224)
    assert space.num_decisions == 50 == len(space.decisions)
    assert space.decisions[-1].choices == (112, 168, 196, 224)
    per_block = 3 * 2 * 2 * 2 * 3 * 3 * 3
    assert space.size(1) == per_block ** 7 * 4
    assert space.size(3) == space.size(1) ** 3
    assert space.log10_size(3) == pytest.approx(3 * np.log10(float(space.size(1))))


def test_thousand_random_ensembles_of_three_decode_round_trip_and_have_valid_shapes():
    space = MnasNetSpace(32)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(1000):
        vec = space.sample(rng, 3)
        ens = space.decode(vec)
        assert isinstance(ens, EnsembleSpec) and ens.size == 3
        back = from_json(to_json(ens))
        assert back == ens and back.id == ens.id
        assert space.decode(space.encode(ens)) == ens
        for m in ens.members:
            plan = layer_plan(m, 10)
            assert plan[-2].h_out >= 2  # the small-input rule keeps the final map at least 2x2
            assert all(l.params >= 0 and l.multiply_adds >= 0 for l in plan)
        seen.add(ens.id)
    assert len(seen) == 1000


def test_encode_is_canonical():
    space = MnasNetSpace(224)
    vec = [0] * 50
    vec[0], vec[1] = 2, 1  # conv op "conv": the expansion choice is ignored -> canonical index 0
    vec[6] = 0  # block1 has n=1: layers -1 clamps to 1 layer, same as 0 -> canonical index 0
    canon = space.encode_member(space.decode_member(vec))
    assert canon[1] == 0 and canon[6] == 0
    assert space.decode_member(canon) == space.decode_member(vec)


def test_small_input_rule():
    big, small = MnasNetSpace(224).decode_member([1] * 50), MnasNetSpace(32).decode_member([1] * 50)
    assert big.stem_stride == 2 and small.stem_stride == 1
    assert [b.strides for b in big.blocks] == [1, 2, 2, 2, 1, 2, 1]
    assert [b.strides for b in small.blocks] == [1, 1, 2, 2, 1, 2, 1]
    assert layer_plan(small, 10, 32)[-2].h_out == 4
    assert [MnasNetSpace(28).decisions[-1].choices] == [(14, 21, 24, 28)]
    assert MnasNetSpace(224).decisions[-1].choices == tuple(int(f * 224) for f in RESOLUTION_FRACTIONS)


@pytest.mark.parametrize("vec, msg", [([0] * 49, "expected 50"), ([0] * 49 + [4], "out of range"),
                                      ([0] * 51, "multiple of 50")])
def test_bad_decision_vectors(vec, msg):
    space = MnasNetSpace(224)
    with pytest.raises(SpecError, match=msg):
        (space.decode_member if len(vec) != 51 else space.decode)(vec)


def test_encode_rejects_specs_outside_the_space():
    from search_space import zoo

    with pytest.raises(SpecError, match="not"):
        MnasNetSpace(224).encode_member(zoo.get("mnasnet-a1"))


@pytest.mark.parametrize("native, width", [(224, 1.0), (32, 1.0), (32, 0.25), (28, 0.5)])
def test_canonical_skips_keep_each_network_and_merge_exactly_the_equal_ones(native, width):
    """For random members with each block's skip set to each choice in turn: writing the skips
    canonically never changes the layers built (layer_plan decides each layer's shortcut), and two
    such members have one canonical spec exactly when they build the same layers."""
    from search_space import canonical_skips, scale_width

    space = MnasNetSpace(native)
    rng = np.random.default_rng(native + int(width * 100))
    merged = {"pool=identity": 0, "identity=none": 0}
    for _ in range(30):
        vec = list(space.sample(rng, 1))
        for b in range(7):
            specs = []
            for skip in range(3):
                vec[b * 7 + 4] = skip
                m = space.decode_member(vec, canonical=False)
                specs.append(scale_width(m, width, "never") if width != 1.0 else m)
            plans = [layer_plan(m, 10) for m in specs]
            canon = [canonical_skips(m) for m in specs]
            for m, c, plan in zip(specs, canon, plans):
                assert layer_plan(c, 10) == plan
                assert canonical_skips(c) == c
            for i in range(3):
                for j in range(i + 1, 3):
                    assert (canon[i] == canon[j]) == (plans[i] == plans[j]), (b, i, j, specs[i].blocks[b])
            merged["pool=identity"] += canon[1] == canon[2]
            merged["identity=none"] += canon[0] == canon[1]
    assert merged["identity=none"] > 0, merged  # one-layer blocks that change shape: at every width
    if width < 1.0:  # at full width no stride-1 block's choices give in == out; narrower, rounding can
        assert merged["pool=identity"] > 0, merged


def test_decoding_writes_inert_skips_canonically_and_encode_round_trips_to_that():
    from search_space import SkipOp, canonical_skips

    space = MnasNetSpace(224)
    vec = [0] * 50
    vec[0:7] = [1, 0, 0, 0, 2, 1, 1]  # block 1: sepconv, pool skip, 16 filters, 1 layer (32 -> 16)
    vec[7:14] = [0, 0, 0, 0, 2, 1, 1]  # block 2: mbconv, pool skip, 2 layers
    vec[28:35] = [0, 0, 0, 0, 1, 1, 1]  # block 5 (64 -> 96, stride 1, 3 layers): identity skip
    raw = space.decode_member(vec, canonical=False)
    spec = space.decode_member(vec)
    assert spec == canonical_skips(raw)
    assert [b.skip for b in spec.blocks][:5] == [SkipOp.POOL, SkipOp.POOL, SkipOp.NONE, SkipOp.NONE, SkipOp.IDENTITY]
    one_layer = list(vec)
    one_layer[4] = 1  # identity on block 1, whose one layer changes shape: no shortcut, as none
    assert space.decode_member(one_layer) == space.decode_member(vec[:4] + [0] + vec[5:])
    assert space.decode_member(one_layer) != space.decode_member(one_layer, canonical=False)
    reshaping = MnasNetSpace(32).decode_member([0] * 4 + [2] + [0] * 45)  # block 1 as above, pool skip
    assert reshaping.blocks[0].skip == SkipOp.POOL  # 32 -> 16 channels: pool projects, not identity
    # a spec written by hand with an inert skip encodes to the canonical vector of its network
    assert space.decode_member(space.encode_member(raw)) == spec
    assert space.encode_member(raw) == space.encode_member(spec)


def test_network_id_is_one_for_specs_that_differ_only_in_an_inert_skip():
    import dataclasses

    from search_space import SkipOp, WideResNetSpec, from_dict, network_id, spec_id
    from tests.conftest import one_network_recorded_twice

    nine, twelve = (from_dict(r["members"][0]["spec"]) for r in one_network_recorded_twice())
    assert spec_id(nine) != spec_id(twelve)  # as recorded before decoding wrote skips canonically
    assert network_id(nine) == network_id(twelve)
    assert {network_id(nine)} & {spec_id(nine), spec_id(twelve)}  # one of the two was written canonically
    assert layer_plan(nine) == layer_plan(twelve)
    # a spec whose skip changes the network keeps an id of its own; other kinds of spec: their spec_id
    other = nine.replace(blocks=tuple(dataclasses.replace(b, skip=SkipOp.NONE) if i == 1 else b
                                      for i, b in enumerate(nine.blocks)))
    assert layer_plan(other) != layer_plan(nine) and network_id(other) != network_id(nine)
    wrn = WideResNetSpec(depth=10, width=1)
    assert network_id(wrn) == spec_id(wrn)
