"""Setting up train / train_dev / dev / test, as the course says.

- Sizes follow the data size: 60/20/20 for small data (up to ~10,000 examples), about 98/1/1 for big
  data (1,000,000 and more) with dev and test capped ("10,000 examples is enough"), and in between a
  rule that moves monotonically from one to the other. Explicit ratios or sizes override the rule, and
  the test set can be dropped (then nothing gives an unbiased estimate of the final performance).
- Dev and test come from the target sources only ("choose dev and test to reflect data you expect to get
  in the future"), so they share one distribution; train gets every other source plus the rest of the
  target data, at least `min_target_in_train` of it.
- train_dev is carved out of train and never trained on: same distribution as train, unseen like dev.
- Each example's split is a function of its id (a salted hash), not of its row position. Given the
  previous assignment (same policy), old examples stay where they were and only new ones are placed.
- An example of dev or test whose features equal those of an example in an earlier split is a leak.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

SPLITS = ("train", "train_dev", "dev", "test")
# Splits as uint8 codes (one byte per example at 10M examples), in the order that decides a leak.
TRAIN, TRAIN_DEV, DEV, TEST = range(4)
RATIO_KEYS = ("train", "dev", "test")
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class SplitChecks:
    """What the split checks and how strict it is. They change the report, never the assignment.

    on_leak: a dev/test example duplicating an earlier split's example is dropped, only reported, or fails.
    on_missing_class: a class absent from dev or test warns or fails.
    expected_error: the dev error to size the sets for (None: 0.5, the widest interval).
    min_improvement: the smallest error difference between two models you care to detect (None: no check).
    alpha, power: of the paired test between two models; confidence of the intervals is 1 - alpha.
    max_domain_auc: a domain classifier above this AUC (and significantly above 0.5) means "different".
    sample: rows per side fed to each domain classifier.
    """

    on_leak: Literal["drop", "warn", "fail"] = "drop"
    on_missing_class: Literal["warn", "fail"] = "warn"
    expected_error: float | None = None
    min_improvement: float | None = None
    alpha: float = 0.05
    power: float = 0.8
    max_domain_auc: float = 0.6
    sample: int = 2000

    def __post_init__(self) -> None:
        for name in ("expected_error", "min_improvement"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name} must be a fraction in (0, 1) or null, got {value}")
        if not 0 < self.alpha < 0.5 or not 0.5 <= self.power < 1:
            raise ValueError(f"need 0 < alpha < 0.5 and 0.5 <= power < 1, got {self.alpha}, {self.power}")
        if not 0.5 < self.max_domain_auc <= 1:
            raise ValueError(f"max_domain_auc must be in (0.5, 1], got {self.max_domain_auc}")
        if self.sample < 20:
            raise ValueError(f"sample must be at least 20 rows, got {self.sample}")


@dataclass(frozen=True)
class SplitPolicy:
    """How examples are assigned. Sizes are example counts, ratios and shares fractions.

    ratios: explicit {train, dev, test} shares summing to 1, instead of the size rule.
    dev_size / test_size: explicit example counts; they win over ratios and the rule.
    test_set: False drops the test set. min_target_in_train: share of the target-source examples that
    train keeps when the rule sizes dev and test. train_dev_fraction: share of train held out as
    train_dev. salt: seeds the id hash (changing it reshuffles every example).
    """

    salt: str = "mlstrategy-v1"
    small_data_max: int = 10_000
    big_data_min: int = 1_000_000
    dev_test_cap: int = 10_000
    ratios: dict[str, float] | None = None
    dev_size: int | None = None
    test_size: int | None = None
    test_set: bool = True
    min_target_in_train: float = 0.2
    train_dev_fraction: float = 0.2
    checks: SplitChecks = field(default_factory=SplitChecks)

    def __post_init__(self) -> None:
        if not 0 < self.small_data_max < self.big_data_min:
            raise ValueError("need 0 < small_data_max < big_data_min")
        if self.dev_test_cap <= 0:
            raise ValueError("dev_test_cap must be positive")
        if not 0 <= self.train_dev_fraction < 1:
            raise ValueError(f"train_dev_fraction must be in [0, 1), got {self.train_dev_fraction}")
        if not 0 <= self.min_target_in_train < 1:
            raise ValueError(f"min_target_in_train must be in [0, 1), got {self.min_target_in_train}")
        for name in ("dev_size", "test_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive number of examples or null")
        if self.ratios is not None:
            unknown = sorted(set(self.ratios) - set(RATIO_KEYS))
            if unknown or "dev" not in self.ratios or "train" not in self.ratios:
                raise ValueError(f"ratios takes train, dev and optionally test, got {sorted(self.ratios)}")
            if any(not 0 <= r <= 1 for r in self.ratios.values()) or self.ratios["dev"] == 0:
                raise ValueError(f"ratios must be fractions in [0, 1] with dev > 0, got {self.ratios}")
            total = sum(self.ratios.values())
            if abs(total - 1) > 1e-6:
                terms = " + ".join(f"{k} {self.ratios[k]:g}" for k in RATIO_KEYS if k in self.ratios)
                raise ValueError(f"ratios must sum to 1, got {terms} = {total:g}")

    def fingerprint(self, target_sources: Sequence[str] = ()) -> str:
        """Identifies the assignment rule: a previous assignment is kept only under the same one."""
        rule = {k: v for k, v in dataclasses.asdict(self).items() if k != "checks"}
        return json.dumps({**rule, "target_sources": sorted(target_sources)}, sort_keys=True)


@dataclass(frozen=True)
class SplitPlan:
    """How many examples dev and test should hold, and why."""

    n_examples: int
    n_dev: int
    n_test: int
    rule: str

    @property
    def ratios(self) -> dict[str, float]:
        n = self.n_examples
        return {"train": 1 - (self.n_dev + self.n_test) / n, "dev": self.n_dev / n, "test": self.n_test / n}


def rule_dev_fraction(n_examples: int, policy: SplitPolicy) -> tuple[float, str]:
    """The size rule: the share of all examples for dev (and as much for test), and its wording.

    Between small and big data the share falls log-linearly in n from 20% to 1%, so the dev set keeps
    growing with n while its share shrinks; the absolute cap applies everywhere.
    """
    small, big = policy.small_data_max, policy.big_data_min
    if n_examples <= small:
        fraction, rule = 0.2, f"small data (<= {small:,} examples): 60/20/20"
    elif n_examples >= big:
        fraction, rule = 0.01, f"big data (>= {big:,} examples): 98/1/1"
    else:
        position = (math.log(n_examples) - math.log(small)) / (math.log(big) - math.log(small))
        fraction = 0.2 * (0.01 / 0.2) ** position
        rule = f"medium data: dev share {fraction:.1%}, log-linear between 20% at {small:,} and 1% at {big:,}"
    if fraction * n_examples > policy.dev_test_cap:
        fraction = policy.dev_test_cap / n_examples
        rule += f"; dev and test capped at {policy.dev_test_cap:,} examples each"
    return fraction, rule


def split_plan(n_examples: int, policy: SplitPolicy | None = None, n_target: int | None = None) -> SplitPlan:
    """Dev and test sizes for `n_examples`, of which `n_target` (default: all) may go to dev and test."""
    policy = policy or SplitPolicy()
    if n_examples <= 0:
        raise ValueError("there are no examples to split")
    n_target = n_examples if n_target is None else n_target
    if policy.ratios is not None:
        dev_share, test_share = policy.ratios["dev"], policy.ratios.get("test", 0.0)
        rule = "explicit ratios " + "/".join(f"{policy.ratios.get(k, 0):g}" for k in RATIO_KEYS)
    else:
        dev_share, rule = rule_dev_fraction(n_examples, policy)
        test_share = dev_share
    n_dev, n_test = round(dev_share * n_examples), round(test_share * n_examples)
    if not policy.test_set:
        n_test = 0
    if policy.ratios is None and policy.dev_size is None and policy.test_size is None:
        room = math.floor((1 - policy.min_target_in_train) * n_target)
        if n_dev + n_test > room:
            scale = room / (n_dev + n_test)
            n_dev, n_test = math.floor(n_dev * scale), math.floor(n_test * scale)
            rule += (
                f"; dev and test reduced so that train keeps {policy.min_target_in_train:.0%} of the "
                f"{n_target:,} target-source examples (min_target_in_train)"
            )
    if policy.dev_size is not None:
        n_dev, rule = policy.dev_size, rule + f"; dev_size {policy.dev_size:,}"
    if policy.test_size is not None and policy.test_set:
        n_test, rule = policy.test_size, rule + f"; test_size {policy.test_size:,}"
    if not policy.test_set:
        rule += "; no test set (test_set: false), so no unbiased estimate of the final performance"
    if n_dev + n_test > n_target:
        where = "examples" if n_target == n_examples else "examples of the target sources"
        raise ValueError(
            f"dev ({n_dev:,}) and test ({n_test:,}) need {n_dev + n_test:,} examples but there are only "
            f"{n_target:,} {where}; lower dev_size/test_size/ratios"
        )
    if n_dev < 1:
        raise ValueError(f"the plan leaves dev empty ({rule}); there are too few target-source examples")
    return SplitPlan(n_examples=n_examples, n_dev=n_dev, n_test=n_test, rule=rule)


def id_hash(ids: Iterable[str], salt: str) -> np.ndarray:
    """(n, 2) uint64: two independent halves of a keyed BLAKE2b hash of each id. They depend on
    (salt, id) alone, on every platform: column 0 places the example, column 1 carves train_dev."""
    key, blocks, remaining = salt.encode(), [], iter(ids)
    while block := list(itertools.islice(remaining, HASH_BLOCK)):  # bounded memory at 10M ids
        digests = b"".join(hashlib.blake2b(str(i).encode(), digest_size=16, key=key).digest() for i in block)
        blocks.append(np.frombuffer(digests, dtype=">u8").reshape(-1, 2).astype(np.uint64))
    return np.concatenate(blocks) if blocks else np.empty((0, 2), dtype=np.uint64)


def unit_hash(ids: Iterable[str], salt: str) -> np.ndarray:
    """(n,) float64 in [0, 1): where each id falls on the split line."""
    return _unit(id_hash(ids, salt)[:, 0])


def _unit(hashes: np.ndarray) -> np.ndarray:
    return hashes.astype(np.float64) / 2.0**64


@dataclass(frozen=True)
class Assignment:
    """codes: (n,) uint8 split code of each example (index into SPLITS); plan: the sizes aimed for;
    kept: how many examples kept the split the previous assignment gave them."""

    codes: np.ndarray
    plan: SplitPlan
    kept: int = 0

    def names(self) -> np.ndarray:
        return np.asarray(SPLITS, dtype=object)[self.codes]


def assign_splits(
    ids: Collection[str],
    sources: Sequence[str] | np.ndarray | pd.Categorical | None = None,
    target_sources: Sequence[str] | None = None,
    policy: SplitPolicy | None = None,
    previous: np.ndarray | None = None,
) -> Assignment:
    """Assign every example to one of SPLITS.

    ids: (n,) unique example ids (any sized iterable of str; read twice at most).
    sources: (n,) source of each example, or None for one source.
    target_sources: the sources dev and test must reflect (None or empty: every source).
    previous: (n,) int, each example's code in the last assignment made under the same policy, -1 for a
    new example. Old examples keep their split; new target examples fill what dev and test still lack.
    """
    policy = policy or SplitPolicy()
    n = len(ids)
    if sources is None or not target_sources:
        is_target = np.ones(n, dtype=bool)
    else:
        sources = pd.Series(sources, copy=False)  # a Categorical keeps 10M sources in 10 MB
        if len(sources) != n:
            raise ValueError(f"{len(sources)} sources for {n} ids")
        present = set(sources.unique().tolist())
        unknown = sorted(set(target_sources) - present)
        if unknown:
            raise ValueError(
                f"target source(s) {unknown} have no examples; sources present: {sorted(present, key=str)}"
            )
        is_target = sources.isin(list(target_sources)).to_numpy()
    plan = split_plan(n, policy, int(is_target.sum()))
    hashes = id_hash(ids, policy.salt)
    repeated = duplicated_ids(ids, hashes[:, 0])
    if repeated:
        raise ValueError(f"ids must be unique; repeated: {repeated}")
    prev = np.full(n, -1, dtype=np.int8) if previous is None else np.asarray(previous)
    # An old dev/test example whose source is no longer a target source is placed again.
    old = (prev >= 0) & ~(np.isin(prev, (DEV, TEST)) & ~is_target)
    codes = np.full(n, TRAIN, dtype=np.uint8)
    codes[old] = prev[old]
    fresh = is_target & ~old
    m = int(fresh.sum())
    dev_share = min(max(plan.n_dev - int((codes[old] == DEV).sum()), 0) / m, 1.0) if m else 0.0
    test_share = min(max(plan.n_test - int((codes[old] == TEST).sum()), 0) / m, 1 - dev_share) if m else 0.0
    u, v = _unit(hashes[:, 0]), _unit(hashes[:, 1])
    codes[fresh & (u < dev_share)] = DEV
    codes[fresh & (u >= dev_share) & (u < dev_share + test_share)] = TEST
    codes[~old & (codes == TRAIN) & (v < policy.train_dev_fraction)] = TRAIN_DEV
    return Assignment(codes=codes, plan=plan, kept=int(old.sum()))


def duplicated_ids(ids: Iterable[str], hashes: np.ndarray, limit: int = 10) -> list[str]:
    """The first `limit` ids that occur more than once. hashes: (n,) uint64 `id_hash` of ids (column 0);
    only ids whose hash repeats are compared, so unique ids cost one sort."""
    ordered = np.sort(hashes)
    candidates = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not candidates:
        return []
    suspect = np.isin(hashes, np.fromiter(candidates, dtype=np.uint64))
    seen: set[str] = set()
    found: dict[str, None] = {}
    for key, is_suspect in zip(ids, suspect, strict=True):
        if is_suspect:
            if key in seen:
                found.setdefault(str(key))
                if len(found) == limit:
                    break
            seen.add(key)
    return list(found)


def moved_since_last(codes: np.ndarray, previous: np.ndarray) -> int:
    """How many examples of the previous assignment (previous >= 0) are now in another split."""
    old = np.asarray(previous) >= 0
    return int((np.asarray(codes)[old] != np.asarray(previous)[old]).sum())


def row_hashes(x: np.ndarray | pd.DataFrame) -> np.ndarray:
    """(n,) uint64 hash of each row's feature values: equal rows, equal hashes (within one run)."""
    return pd.util.hash_pandas_object(pd.DataFrame(x), index=False).to_numpy(np.uint64)


def find_leaks(hashes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n,) bool: the examples whose features equal those of an example in an earlier split
    (train < train_dev < dev < test), e.g. a dev image that is also in train."""
    order = np.lexsort((codes, hashes))
    h, c = hashes[order], codes[order]
    starts = np.r_[True, h[1:] != h[:-1]]
    first_code = c[np.flatnonzero(starts)[np.cumsum(starts) - 1]]
    leak = np.empty(len(codes), dtype=bool)
    leak[order] = c > first_code
    return leak


def per_class(labels: np.ndarray, codes: np.ndarray) -> dict[str, dict[int, int]]:
    """{split: {label: count}} for every split and every label seen anywhere."""
    classes, index = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes.astype(np.int64) * len(classes) + index, minlength=len(SPLITS) * len(classes))
    table = counts.reshape(len(SPLITS), len(classes))
    return {
        name: dict(zip(classes.tolist(), table[code].tolist(), strict=True))
        for code, name in enumerate(SPLITS)
    }


def missing_classes(counts: dict[str, dict[int, int]], splits: Iterable[str] = ("dev", "test")) -> dict:
    """{split: [labels with no example there]} for the splits that have any example at all."""
    missing = {}
    for name in splits:
        if sum(counts[name].values()):
            absent = [label for label, n in counts[name].items() if n == 0]
            if absent:
                missing[name] = absent
    return missing
