"""Analytic counts against published figures (within 3%) and against built models (exactly)."""

import pytest

from search_space import count, zoo


@pytest.mark.parametrize("name, classes, params_m, madds_m", [
    ("mobilenetv2", 1000, 3.4, 300),  # Sandler et al. 2018, Table 4
    ("mnasnet-a1", 1000, 3.9, 312),  # Tan et al. 2019, Table 1
    ("efficientnet-b0", 1000, 5.3, 390),  # Tan & Le 2019, Table 2
    ("efficientnet-b1", 1000, 7.8, 700),
    ("efficientnet-b3", 1000, 12.0, 1800),
    ("wrn-16-8", 10, 11.0, None),  # Zagoruyko & Komodakis 2016, Table 4
    ("wrn-28-10", 10, 36.5, None),
])
def test_published_counts_within_three_percent(name, classes, params_m, madds_m):
    c = count(zoo.get(name), classes)
    assert c.params / 1e6 == pytest.approx(params_m, rel=0.03)
    if madds_m is not None:
        assert c.multiply_adds / 1e6 == pytest.approx(madds_m, rel=0.03)


def test_counts_scale_with_resolution_and_width():
    # TF-slim MobileNetV2 release table: 99M at 128 px, 221M at 192 px; params do not change.
    a = count(zoo.get("mobilenetv2", resolution=128))
    assert a.params == count(zoo.get("mobilenetv2")).params
    assert a.multiply_adds / 1e6 == pytest.approx(99, rel=0.03)
    assert count(zoo.get("mobilenetv2", resolution=192)).multiply_adds / 1e6 == pytest.approx(221, rel=0.03)
    assert count(zoo.get("mobilenetv2", width_multiplier=0.5)).multiply_adds / 1e6 == pytest.approx(97, rel=0.03)
    assert count(zoo.get("mobilenetv2", width_multiplier=1.4)).multiply_adds / 1e6 == pytest.approx(582, rel=0.03)
