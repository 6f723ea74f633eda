"""Training runs of a served app: a real run trains and reloads the served models, one run at
a time per data folder (whichever process holds it), a run cut short reads as interrupted, and
the training curves the epoch-trained models save are read back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock

from agora.client import Agora
from agora.config import Settings
from agora.models.base import Recommender
from agora.models.content_attention import ContentAttentionModel
from agora.serving import training_runs as runs
from agora.wiring import wire

EVENTS = [
    {"event_id": f"e{u}-{i}", "user_id": f"u{u}", "item_id": f"p{(u + i) % 7}", "type": "like"}
    for u in range(12)
    for i in range(4)
]


def _wait(folder: runs.TrainingRuns, run_id: str, seconds: float = 60.0) -> runs.TrainingRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = folder.get(run_id)
        assert run is not None
        if run.state != runs.RUNNING:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still running after {seconds} s")


def test_a_run_trains_saves_and_serves_the_new_versions(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None)
    with Agora(settings) as agora:
        agora.ingest(EVENTS)
    wiring = wire(settings)
    try:
        folder = runs.TrainingRuns(tmp_path)
        run = folder.start(["trending", "itemknn"], settings, wiring.sessions, wiring.models, "k")
        done = _wait(folder, run.run_id)
        assert done.state == runs.DONE and done.done == 2 and done.finished
        assert wiring.models.versions() == done.versions  # served at once
        assert any("itemknn: saved" in line for line in done.lines)
        assert "served models reloaded" in done.lines[-2]
        versions = runs.model_versions(settings.model_dir, wiring.models.versions())
        assert [v.served for v in versions["itemknn"]] == [True]
        assert versions["itemknn"][0].metric("holdout_ndcg@10") is not None
        assert folder.recent() == [done]
        # versions whose meta.json is odd are left out, the others still listed
        for version, text in (("20200101T000000Z", "{not json"), ("20200102T000000Z", "[1, 2]")):
            odd_version = settings.model_dir / "itemknn" / version
            odd_version.mkdir()
            (odd_version / "meta.json").write_text(text)
        listed = runs.model_versions(settings.model_dir, wiring.models.versions())
        assert listed == versions
        # a model that cannot be built fails the run, with why in its log
        odd = settings.model_copy(update={"model_params": {"itemknn": {"no_such_param": 1}}})
        failed = folder.start(["itemknn"], odd, wiring.sessions, wiring.models, "k")
        failed = _wait(folder, failed.run_id)
        assert failed.state == runs.FAILED and "bad parameters" in failed.lines[-1]
        assert wiring.models.versions() == done.versions  # the served models stay
    finally:
        wiring.engine.dispose()


def test_one_run_at_a_time_and_a_run_cut_short_reads_interrupted(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None)
    folder = runs.TrainingRuns(tmp_path)
    other = FileLock(str(tmp_path / runs.RUNS_FOLDER / runs.LOCK_FILE), thread_local=False)
    folder.folder.mkdir(parents=True)
    stale = runs.TrainingRun("20261205T200000Z-abcdef", ["ease"], "2026-12-05T20:00:00+00:00", "k")
    (folder.folder / f"{stale.run_id}.json").write_text(json.dumps(stale.__dict__))
    with other:  # another process is training
        assert folder.get(stale.run_id).state == runs.RUNNING
        with pytest.raises(runs.RunInProgress) as refused:
            folder.start(["trending"], settings, None, None, "k")  # type: ignore[arg-type]
        assert refused.value.running is not None and refused.value.running.models == ["ease"]
    assert folder.get(stale.run_id).state == runs.INTERRUPTED  # nobody holds the lock now
    with pytest.raises(ValueError, match="unknown models"):
        folder.start(["nosuch"], settings, None, None, "k")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        folder.start([], settings, None, None, "k")  # type: ignore[arg-type]
    (folder.folder / "20261205T210000Z-000000.json").write_text("{not json")
    assert folder.get("20261205T210000Z-000000") is None  # an odd file is no run
    assert folder.get("../../etc/passwd") is None


def test_training_curves_are_read_from_the_saved_state(tmp_path: Path) -> None:
    model = ContentAttentionModel()
    model.curve_ = np.array([[1, 2.5, np.nan], [2, 2.0, 0.11], [3, 1.8, 0.12]])
    model.best_epoch_ = 3
    Recommender.save(model, tmp_path / "content_attention" / "v1")
    curve = runs.training_curve(tmp_path, "content_attention", "v1")
    assert curve == runs.TrainingCurve([2.5, 2.0, 1.8], [None, 0.11, 0.12], 3)
    assert runs.training_curve(tmp_path, "itemknn", "v1") is None  # fitted in one pass
    assert runs.training_curve(tmp_path, "sasrec", "missing") is None
