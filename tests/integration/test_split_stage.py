"""The split stage on the bundled digits and on broken inputs, in process against Prefect's test harness."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from components.datasets import two_source_digits
from pipelines.errors import UserError
from pipelines.running.orchestration import run_stage
from pipelines.store import artifacts
from pipelines.store.params import load_params
from tests.conftest import digest, write_params


def split(frame: pd.DataFrame | None = None) -> dict:
    """Run the split stage on `frame` as the raw data (validation taken as passed)."""
    if frame is not None:
        artifacts.RAW_DATA.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(artifacts.RAW_DATA, index=False)
    artifacts.VALIDATION.parent.mkdir(parents=True, exist_ok=True)
    artifacts.VALIDATION.write_text(json.dumps({"success": True}))
    run_stage("split", load_params())
    return json.loads(artifacts.SPLIT.read_text())


def split_ids() -> dict[str, set[str]]:
    return {
        name: set(pd.read_parquet(artifacts.split_path(name))["id"])
        for name in ("train", "train_dev", "dev", "test")
    }


@pytest.fixture(scope="module")
def digits() -> pd.DataFrame:
    return two_source_digits()


def test_contract_and_source_aware_placement(project, prefect_api, digits):
    found = split(digits)
    assert found["policy"].startswith("small data")
    assert found["ratios"]["dev"] == pytest.approx(0.2, abs=0.02)
    assert found["moved_since_last"] == 0
    assert found["per_class"]["dev"].keys() == {str(k) for k in range(10)}
    ids = split_ids()
    assert all(i.startswith("phone-") for i in ids["dev"] | ids["test"])  # no non-target example
    assert sum(len(v) for v in ids.values()) == 1797
    same = found["dev_test_same_distribution"]
    assert abs(same["domain_auc"] - 0.5) < 0.1 and same["same"]
    # Train mixes clean scans with phone pictures; dev is all phone: a domain classifier sees it at once.
    assert found["train_vs_dev_domain_auc"] > 0.75
    assert 0 < found["dev_ci_halfwidth"] < found["min_detectable_difference"] < 0.2
    assert found["leaks"] == {"count": 0, "ids": [], "action": "drop"}
    record = pd.read_parquet(artifacts.ASSIGNMENT)
    assert len(record) == 1797 and set(record["split"]) == {"train", "train_dev", "dev", "test"}


def test_appending_ten_percent_moves_nothing(project, prefect_api, digits):
    split(digits)
    before = split_ids()
    new = digits.sample(frac=0.1, random_state=1).assign(id=lambda f: "new-" + f["id"])
    pixels = [c for c in new.columns if c.startswith("px_")]
    new[pixels] = new[pixels] * 0.99  # new pictures, not copies (copies would be leaks)
    found = split(pd.concat([digits, new], ignore_index=True))
    assert found["moved_since_last"] == 0
    assert found["kept_from_last"] == 1797
    after = split_ids()
    for name, ids in before.items():
        assert ids <= after[name], name
    assert sum(found["sizes"].values()) == 1797 + len(new)


def test_a_new_policy_reassigns_and_says_so(project, prefect_api, digits):
    split(digits)
    write_params(project, {"split": {"salt": "another"}})
    found = split()
    assert found["moved_since_last"] > 100
    assert found["kept_from_last"] == 0
    assert any("moved to another split" in w for w in found["warnings"])


def test_no_test_set_and_min_improvement(project, prefect_api, digits):
    write_params(project, {"split": {"test_set": False, "checks": {"min_improvement": 0.02}}})
    found = split(digits)
    assert found["sizes"]["test"] == 0 and found["test_ci_halfwidth"] is None
    assert found["dev_test_same_distribution"] is None
    assert "no unbiased estimate" in found["policy"]
    assert found["dev_size_for_min_improvement"] > found["sizes"]["dev"]
    assert any("to detect min_improvement 2.0%" in w for w in found["warnings"])
    assert pd.read_parquet(artifacts.split_path("test")).empty


def test_leaks_are_reported_and_dropped(project, prefect_api, digits):
    # 40 phone pictures also filed as scans under new ids: scans go to train, the originals may be in dev.
    copies = (
        digits[digits["source"] == "phone"].head(40).assign(id=lambda f: "copy-" + f["id"], source="scan")
    )
    found = split(pd.concat([digits, copies], ignore_index=True))
    leaks = found["leaks"]
    assert leaks["count"] > 0 and len(leaks["ids"]) == leaks["count"]
    ids = split_ids()
    assert not set(leaks["ids"]) & (ids["dev"] | ids["test"] | ids["train_dev"])
    originals = set(copies["id"].str.removeprefix("copy-"))
    assert set(leaks["ids"]) <= originals | set(copies["id"])

    write_params(project, {"split": {"checks": {"on_leak": "fail"}}})
    with pytest.raises(UserError, match=r"duplicate an earlier split's features; first ids: \['"):
        split()


def test_missing_class_warns_or_fails(project, prefect_api, digits):
    rare = digits[(digits["label"] != 9) | (digits["source"] == "scan")]  # no phone 9s: none in dev/test
    found = split(rare)
    assert any("dev has no example of class(es) [9]" in w for w in found["warnings"])
    write_params(project, {"split": {"checks": {"on_missing_class": "fail"}}})
    with pytest.raises(UserError, match=r"test has no example of class\(es\) \[9\]"):
        split()


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (lambda f: f.drop(columns="id"), r"no id column 'id'.*add one"),
        (lambda f: f.assign(id=f["id"].where(f.index % 500 != 7, "scan-0001")), r"repeated: \['scan-0001'\]"),
        (lambda f: f.assign(source=f["source"].where(f.index != 11, "")), r"1 rows have an empty source"),
        ({"data": {"target_sources": ["tablet"]}}, r"target source\(s\) \['tablet'\] have no examples"),
        (
            {"split": {"dev_size": 900, "test_size": 900}},
            r"need 1,800 examples but there are only 899 examples of the target",
        ),
    ],
    ids=["missing-id-column", "duplicate-ids", "empty-source", "unknown-target", "dev-larger-than-data"],
)
def test_bad_input_is_named_and_the_last_good_split_survives(project, prefect_api, digits, breaks, message):
    split(digits)
    kept = digest(artifacts.SPLITS_DIR, artifacts.SPLIT, artifacts.ASSIGNMENT)
    if callable(breaks):
        broken = breaks(digits.copy())
    else:
        write_params(project, breaks)
        broken = None
    with pytest.raises(UserError, match=message):
        split(broken)
    assert digest(artifacts.SPLITS_DIR, artifacts.SPLIT, artifacts.ASSIGNMENT) == kept
    assert not list(artifacts.SPLITS_DIR.parent.glob(".*tmp*"))
