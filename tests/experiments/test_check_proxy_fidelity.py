import numpy as np
import pandas as pd
import pytest

from experiments.check_proxy_fidelity import _test_rank_gain, parse_variant, split_variant
from nas.retrained import spearman
from search_space.errors import UserError


def test_a_variant_is_a_base_and_its_settings():
    assert split_variant("seed+0") == ("seed+0", [])
    assert split_variant("epochs2,trainer.zero_init_residual=true,trainer.crop_pad=2") == (
        "epochs2", ["trainer.zero_init_residual=true", "trainer.crop_pad=2"])
    assert parse_variant("epochs2,trainer.crop_pad=2") == ("epochs", 2)
    assert parse_variant("seed+100") == ("seed", 100)
    for bad in ["seed+0,crop_pad", "seed+0,a=b/c", "seed-1", "epochs0", "zero"]:
        with pytest.raises(UserError, match="--variant"):
            parse_variant(bad)


def test_the_rank_gain_over_the_base_is_paired_and_its_interval_holds_it():
    rng = np.random.default_rng(1)
    test = pd.Series(rng.normal(size=60))
    base = test + rng.normal(scale=1.0, size=60)  # a noisy proxy
    better = test + rng.normal(scale=0.2, size=60)  # a sharper one
    out = _test_rank_gain(better, base, test)
    assert out["vs_test_gain"] == pytest.approx(spearman(better, test) - spearman(base, test))
    low, high = out["vs_test_gain_95"]
    assert 0 < low < out["vs_test_gain"] < high  # clearly better, by a margin the resamples agree on
    assert _test_rank_gain(base, base, test)["vs_test_gain_95"] == [0.0, 0.0]  # same proxy: no gain at all
    assert _test_rank_gain(better, base, pd.Series([0.5] * 60)) == {"vs_test_gain": None, "vs_test_gain_95": None}
    assert _test_rank_gain(better, base, test) == out  # seeded: the summary is reproducible
