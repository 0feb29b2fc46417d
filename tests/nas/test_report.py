"""The run report's pieces (nas/report.py) on made-up summaries; whole pages are checked on real runs
in test_search_e2e.py."""

from nas.report import _fronts


def _member(key: str, blocks: str, acc: float, ms: float) -> dict:
    return {"key": key, "resolution": 28, "stem_filters": 8, "stem_stride": 1, "head_filters": 256,
            "blocks": blocks, "latency_ms": ms, "val_accuracy": acc}


def test_fronts_name_shared_members_and_list_each_architecture_once():
    strong = _member("k-strong", "r1_k3_s11_e1_i8_o8", 0.715, 1.84)
    s = {"front": [
        {"size": 1, "sample": 4, "accuracy": 0.70, "latency_max_ms": 1.84, "reward": 0.71, "members": [strong]},
        {"size": 2, "sample": 24, "accuracy": 0.692, "latency_max_ms": 2.0, "reward": 0.712,
         "members": [_member("k-a", "r2_k5_s11_e3_i8_o8", 0.458, 2.0), strong]},
        {"size": 2, "sample": 28, "accuracy": 0.702, "latency_max_ms": 2.04, "reward": 0.721,
         "members": [_member("k-b", "r3_k5_s22_e1_i8_o8", 0.463, 2.04), strong]},
    ]}
    text = "\n".join(_fronts(s))
    assert "| 1 | #4 | 70.0% | 1.84 | 0.710 | m1 | 71.5% |" in text
    assert "| 2 | #24 | 69.2% | 2.00 | 0.712 | m2 + m1 | 45.8% + 71.5% |" in text
    assert "| 2 | #28 | 70.2% | 2.04 | 0.721 | m3 + m1 | 46.3% + 71.5% |" in text
    assert "The fronts' 3 distinct members" in text
    assert text.count("`r1_k3_s11_e1_i8_o8`") == 1  # the shared member's architecture, once
    assert "| m1 | 28 | 1.84 | 71.5% | 1 #4, 2 #24, 2 #28 | stem 8/s1, head 256: `r1_k3_s11_e1_i8_o8` |" in text
