import pytest

from search_space import SpecError, decode_block, decode_blocks, encode_block, encode_blocks, round_filters, zoo
from search_space.spec import ConvOp, SkipOp


@pytest.mark.parametrize("blocks", [zoo.MNASNET_A1, zoo.MNASNET_B1, zoo.MNASNET_SMALL, zoo.MOBILENETV2,
                                    zoo.MOBILENETV1, zoo.EFFICIENTNET_B0])
def test_published_block_strings_read_and_write_exactly(blocks):
    assert encode_blocks(decode_blocks(blocks)) == blocks


def test_fields_of_a_block_string():
    b = decode_block("r3_k5_s22_e3_i24_o40_se0.25")
    assert (b.repeats, b.kernel, b.strides, b.expand, b.in_filters, b.out_filters, b.se_ratio) == (3, 5, 2, 3, 24, 40, 0.25)
    assert b.skip == SkipOp.IDENTITY and b.conv_op == ConvOp.MBCONV
    assert decode_block("r1_k3_s11_e1_i32_o16_noskip").skip == SkipOp.NONE
    assert decode_block("r1_k3_s11_e1_i32_o16").conv_op == ConvOp.SEPCONV


def test_search_space_extensions_round_trip():
    text = "r2_k5_s22_e1_i16_o24_se0.25_conv_poolskip"
    b = decode_block(text)
    assert b.conv_op == ConvOp.CONV and b.skip == SkipOp.POOL
    assert encode_block(b) == text


@pytest.mark.parametrize("text, msg", [
    ("r1_k3_s12_e1_i32_o16", "strides"), ("r1_k3_s11_e1_i32", "missing token 'o'"),
    ("r1_k3_s11_e1_i32_o16_bogus", "unknown token"), ("r1_r2_k3_s11_e1_i32_o16", "given twice"),
    ("r1.5_k3_s11_e1_i32_o16", "integer"), ("", "expected text"),
])
def test_bad_block_strings(text, msg):
    with pytest.raises(SpecError, match=msg):
        decode_block(text)


def test_round_filters_mnasnet_semantics():
    assert round_filters(32, 1.0) == 32
    assert round_filters(32, 0.75) == 24
    assert round_filters(16, 0.35) == 8  # 5.6 -> at least the divisor
    assert round_filters(24, 1.25) == 32  # 30 -> nearest multiple of 8 is 32
    assert round_filters(100, 0.5) == 48  # int(50 + 4) // 8 * 8 = 48 >= 90% of 50
    for f in (16, 24, 40, 80, 112, 160, 320):
        for m in (0.35, 0.5, 0.75, 1.3, 1.4):
            r = round_filters(f, m)
            assert r % 8 == 0 and r >= 0.9 * f * m


def test_width_multiplier_head_policies():
    assert zoo.get("mobilenetv2", width_multiplier=1.4).head_filters == 1792  # TF-slim: scaled above 1.0
    assert zoo.get("mobilenetv2", width_multiplier=0.5).head_filters == 1280
    assert zoo.get("mnasnet-a1", width_multiplier=1.4).head_filters == 1280  # MnasNet never scales it
    assert zoo.get("mobilenetv2", width_multiplier=0.5).stem_filters == 16
