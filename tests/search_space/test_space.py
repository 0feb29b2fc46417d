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
