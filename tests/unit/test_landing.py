"""Where each batch is (store.landing): settled files, names never reused, the journal a killed run leaves."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pipelines.store import landing
from pipelines.store.artifacts import BATCHES


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "landing").mkdir()
    return tmp_path


def test_only_files_unchanged_for_the_settle_time_are_taken(here):
    old, young = here / "landing/old.csv", here / "landing/young.csv"
    old.write_text("id,label\n1,a\n")
    os.utime(old, (time.time() - 60, time.time() - 60))
    young.write_text("id,label\n")
    (here / "landing/partial.csv.part").write_text("id,label\n")  # never a batch
    started = time.monotonic()
    ready, moving = landing.settled(here / "landing", 0.5)
    assert [p.name for p in ready] == ["old.csv", "young.csv"]  # the young one waited out, unchanged
    assert moving == [] and time.monotonic() - started >= 0.4


def test_a_taken_but_unjudged_batch_goes_back_to_landing(here):
    (here / "landing/b.csv").write_text("id,label\n1,a\n")
    landing.take(here / "landing/b.csv", ["a.csv"])  # then the run is killed
    assert (BATCHES / "b.csv").exists() and landing.Journal.read().phase == landing.VALIDATING
    resumed = landing.recover(Path("landing"))
    assert (here / "landing/b.csv").exists() and not (BATCHES / "b.csv").exists()
    assert resumed == landing.Journal(landing.TRAINING, accepted=["a.csv"])  # a.csv still owes a training


def test_the_lock_keeps_a_second_run_out(here):
    with landing.exclusive() as first:
        assert first
        with landing.exclusive() as second:  # another open file description: as another process
            assert not second
        assert landing.holder() == str(os.getpid())
    with landing.exclusive() as again:
        assert again
