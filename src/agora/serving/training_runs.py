"""Training runs started by a served app (the console's Models page): one at a time, in a
background thread, their progress and log kept on disk; and what the trained versions hold
(metrics from ``meta.json``, the training curve of the models that train in epochs).

A run is :func:`agora.evaluation.training.train_from_store` (what ``agora train`` does) on the
store as it is now, with the configured parameters; the served models are reloaded when it
ends. One run at a time per data folder: a run holds a file lock (released by the OS if its
process dies), so a second start is refused while one is going on, whichever process asks.
Each run is one JSON file, ``<data_dir>/training-runs/<run id>.json``, rewritten at every step
(state, models done, the current step, the log lines), so any worker shows its progress and the
log stays readable after it ended; the newest :data:`KEEP_RUNS` are kept. A run whose file still
says ``running`` while nobody holds the lock was cut short (its server stopped): ``interrupted``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from sqlalchemy.orm import Session, sessionmaker

from agora.config import Settings
from agora.evaluation.training import train_from_store
from agora.features.interactions import Interactions
from agora.models.artifacts import list_artifacts, read_meta
from agora.models.registry import MODELS
from agora.serving.service import ModelStore

log = logging.getLogger(__name__)

RUNS_FOLDER = "training-runs"
LOCK_FILE = "run.lock"
#: Runs whose files are kept (older ones are deleted when a run starts).
KEEP_RUNS = 20
RUNNING, DONE, FAILED, INTERRUPTED = "running", "done", "failed", "interrupted"
#: Models a run may train: every registered one but the blend (it needs its members named).
TRAINABLE = tuple(sorted(name for name in MODELS if name != "hybrid"))
_RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


class RunInProgress(RuntimeError):
    """A run was asked for while another one is going on."""

    def __init__(self, running: TrainingRun | None):
        self.running = running
        super().__init__("a training run is already going on; wait for it to end")


@dataclass
class TrainingRun:
    """One run: what it trains, how far it got and what it said."""

    run_id: str
    models: list[str]
    started: str
    started_by: str
    state: str = RUNNING
    finished: str | None = None
    done: int = 0
    step: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.models)

    @property
    def seconds(self) -> float | None:
        """How long it ran (so far, while running)."""
        start = datetime.fromisoformat(self.started)
        end = datetime.fromisoformat(self.finished) if self.finished else datetime.now(UTC)
        return round((end - start).total_seconds(), 1)


@dataclass(frozen=True)
class ModelVersion:
    """One trained version on disk as ``meta.json`` describes it."""

    name: str
    version: str
    created: str | None
    metrics: dict[str, Any]
    n_users: int | None
    n_items: int | None
    served: bool

    def metric(self, key: str) -> float | None:
        value = self.metrics.get(key)
        return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class TrainingCurve:
    """Training loss per epoch (1..n) and valid NDCG@10 per epoch (None where not measured)."""

    loss: list[float]
    valid: list[float | None]
    best_epoch: int | None


class TrainingRuns:
    """The runs of one data folder; :meth:`start` one, read them back with :meth:`get`."""

    def __init__(self, data_dir: Path):
        self.folder = Path(data_dir) / RUNS_FOLDER

    def _path(self, run_id: str) -> Path:
        return self.folder / f"{run_id}.json"

    def _lock(self) -> FileLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / LOCK_FILE), thread_local=False)

    def _write(self, run: TrainingRun) -> None:
        tmp = self._path(run.run_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(run), ensure_ascii=False))
        os.replace(tmp, self._path(run.run_id))

    def _running(self) -> bool:
        lock = self._lock()
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False

    def get(self, run_id: str) -> TrainingRun | None:
        """The run ``run_id`` (None: unknown, or not a run id)."""
        if not _RUN_ID.match(run_id) or not self._path(run_id).is_file():
            return None
        try:
            run = TrainingRun(**json.loads(self._path(run_id).read_text()))
        except (ValueError, TypeError):  # a file written by something else
            log.warning("training run file %s is unreadable", run_id)
            return None
        if run.state == RUNNING and not self._running():
            run.state = INTERRUPTED
        return run

    def recent(self, n: int = 10) -> list[TrainingRun]:
        """The newest ``n`` runs, newest first."""
        if not self.folder.is_dir():
            return []
        ids = sorted((p.stem for p in self.folder.glob("*.json")), reverse=True)
        runs = (self.get(run_id) for run_id in ids[:n])
        return [run for run in runs if run is not None]

    def start(
        self,
        names: Sequence[str],
        settings: Settings,
        sessions: sessionmaker[Session],
        models: ModelStore,
        started_by: str,
        validate: bool = True,
    ) -> TrainingRun:
        """Start training ``names`` in a background thread and return the run; raises
        :class:`RunInProgress` while another run holds the lock, ValueError for a name that
        is not a trainable model."""
        unknown = sorted(set(names) - set(TRAINABLE))
        if unknown or not names:
            raise ValueError(
                f"unknown models {unknown}; trainable: {', '.join(TRAINABLE)}"
                if unknown
                else "choose at least one model to train"
            )
        lock = self._lock()
        try:
            lock.acquire(timeout=0.2)  # rides over a reader's probe of the lock (:meth:`get`)
        except Timeout:
            latest = self.recent(1)
            going = latest[0] if latest and latest[0].state == RUNNING else None
            raise RunInProgress(going) from None
        try:
            now = datetime.now(UTC)
            run = TrainingRun(
                run_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}",
                models=list(dict.fromkeys(names)),
                started=now.isoformat(),
                started_by=started_by,
            )
            self._prune()
            self._say(run, f"training {', '.join(run.models)} on the store's events")
            thread = threading.Thread(
                target=self._run,
                args=(run, lock, settings, sessions, models, validate),
                name="agora-training-run",
                daemon=True,
            )
            thread.start()
        except BaseException:
            lock.release()
            raise
        return run

    def _say(self, run: TrainingRun, line: str, step: str | None = None) -> None:
        run.lines.append(f"{datetime.now(UTC).strftime('%H:%M:%S')} {line}")
        if step is not None:
            run.step = step
        self._write(run)

    def _prune(self) -> None:
        old = sorted(self.folder.glob("*.json"), reverse=True)[KEEP_RUNS - 1 :]
        for path in old:
            path.unlink(missing_ok=True)

    def _run(
        self,
        run: TrainingRun,
        lock: FileLock,
        settings: Settings,
        sessions: sessionmaker[Session],
        models: ModelStore,
        validate: bool,
    ) -> None:
        started = time.perf_counter()

        def loaded(interactions: Interactions) -> None:
            self._say(
                run,
                f"read {interactions.n_users:,} users x {interactions.n_items:,} items, "
                f"{interactions.matrix.nnz:,} interactions",
            )

        def step(name: str, stage: str) -> None:
            if stage == "saved" or stage.startswith("skipped"):
                run.done += 1
            self._say(run, f"{name}: {stage}", f"{name}: {stage}")

        try:
            with sessions() as session:
                trained = train_from_store(
                    session,
                    run.models,
                    settings.model_dir,
                    settings.event_weights,
                    params=settings.model_params,
                    validate=validate,
                    keep_versions=settings.keep_versions,
                    on_loaded=loaded,
                    on_step=step,
                )
            for result in trained:
                ndcg = result.metrics.get("holdout_ndcg@10")
                said = f", holdout NDCG@10 {ndcg:.4f}" if isinstance(ndcg, float) else ""
                run.versions[result.name] = result.path.name
                self._say(
                    run,
                    f"{result.name}: version {result.path.name}{said}, "
                    f"fitted in {result.fit_seconds:.1f} s",
                )
            served = models.reload()
            self._say(run, f"served models reloaded: {', '.join(sorted(served))}")
            run.state = DONE
            self._say(run, f"finished in {time.perf_counter() - started:.1f} s", "")
        except Exception as exc:  # the run's log says why; the server goes on
            log.exception("training run %s failed", run.run_id)
            run.state = FAILED
            self._say(run, f"failed: {type(exc).__name__}: {exc}", "")
        finally:
            run.finished = datetime.now(UTC).isoformat()
            try:
                self._write(run)
            finally:
                lock.release()


def model_versions(model_dir: Path, served: dict[str, str]) -> dict[str, list[ModelVersion]]:
    """Every version on disk of every model, newest first (``served``: name -> the version
    served now). A version whose ``meta.json`` cannot be read is left out (logged)."""
    out: dict[str, list[ModelVersion]] = {}
    for path in list_artifacts(model_dir):
        try:
            meta = read_meta(path)
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            log.warning("model version %s/%s: meta.json unreadable", path.parent.name, path.name)
            continue
        metrics = meta.get("metrics")
        name = path.parent.name
        version = ModelVersion(
            name=name,
            version=path.name,
            created=meta.get("created") if isinstance(meta.get("created"), str) else None,
            metrics=metrics if isinstance(metrics, dict) else {},
            n_users=meta.get("n_users") if isinstance(meta.get("n_users"), int) else None,
            n_items=meta.get("n_items") if isinstance(meta.get("n_items"), int) else None,
            served=served.get(name) == path.name,
        )
        out.setdefault(name, []).insert(0, version)
    return out


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, np.float64)]


def training_curve(model_dir: Path, name: str, version: str) -> TrainingCurve | None:
    """The training curve a version of a model that trains in epochs saved with its state
    (sasrec: ``loss_curve_``/``valid_curve_``; lightgcn and social: ``curve_loss_``/
    ``curve_valid_``; content_attention: ``curve_`` rows of epoch, loss, valid); None for a
    model fitted in one pass, or a version without one."""
    folder = Path(model_dir) / name / version
    try:
        with np.load(folder / "state.npz", allow_pickle=False) as state:
            keys = set(state.files)
            if {"loss_curve_", "valid_curve_"} <= keys:
                loss, valid = state["loss_curve_"], state["valid_curve_"]
            elif {"curve_loss_", "curve_valid_"} <= keys:
                loss, valid = state["curve_loss_"], state["curve_valid_"]
            elif "curve_" in keys and (rows := state["curve_"]).ndim == 2 and rows.shape[1] == 3:
                loss, valid = rows[:, 1], rows[:, 2]  # rows of epoch, loss, valid
            else:
                return None
        scalars = json.loads((folder / "model.json").read_text()).get("scalars", {})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError):
        log.warning("model version %s/%s: training curve unreadable", name, version)
        return None
    if not len(loss):
        return None
    best = scalars.get("best_epoch_") if isinstance(scalars, dict) else None
    padded = np.full(len(loss), np.nan)
    padded[: min(len(valid), len(loss))] = np.asarray(valid, np.float64)[: len(loss)]
    return TrainingCurve(_finite(loss), _finite(padded), best if isinstance(best, int) else None)
