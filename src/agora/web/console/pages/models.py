"""Models: every trained model's versions with their holdout metrics (``meta.json``, as
``GET /models`` serves them), the training curves of the models that train in epochs, and
training runs started from the page (admin keys, as ``POST /admin/reload``): one at a time, in
the background, their progress polled live and their log kept."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from agora.api.deps import SessionFactoryDep, SettingsDep
from agora.api.routing import OneHopRoute
from agora.config import Settings
from agora.serving import training_runs as runs
from agora.serving.service import ModelStore
from agora.serving.views import ModelsDep
from agora.web.console import auth, charts
from agora.web.console.layout import NavEntry, panel, render, texts

router = APIRouter(route_class=OneHopRoute, prefix="/console")
NAV = NavEntry("/console/models", "nav.models")
ReadSession = Annotated[auth.ConsoleSession, Depends(auth.require("read"))]
AdminSession = Annotated[auth.ConsoleSession, Depends(auth.require("admin"))]
RunId = Annotated[str, Path(min_length=1, max_length=64)]

#: How often a running run's panel asks for its progress.
POLL_SECONDS = 1
RECENT_RUNS = 8
#: The form's field prefix of a model to train (one checkbox per model).
MODEL_FIELD = "model."


def training_runs(settings: Settings) -> runs.TrainingRuns:
    """The runs of the served data folder."""
    return runs.TrainingRuns(settings.data_dir)


def _curves(
    model_dir: FilePath, versions: dict[str, list[runs.ModelVersion]], t: Any
) -> list[dict]:
    """One chart per model whose versions kept a training curve (loss per epoch, and valid
    NDCG@10 where measured), a line per version."""
    out = []
    for name, kept in sorted(versions.items()):
        loss, valid = {}, {}
        for version in reversed(kept):  # oldest first: the newest is drawn last, on top
            curve = runs.training_curve(model_dir, name, version.version)
            if curve is None:
                continue
            loss[t("models.loss_of", version=version.version)] = curve.loss
            valid[t("models.valid_of", version=version.version)] = curve.valid
        if loss:
            option = charts.epoch_curves(
                loss, valid, t("axis.epoch"), t("axis.training_loss"), t("axis.valid_ndcg")
            )
            out.append({"name": name, "option": option})
    return out


def _history(versions: dict[str, list[runs.ModelVersion]], t: Any) -> dict | None:
    """Holdout NDCG@10 of every version over the time it was trained, a line per model."""
    series: dict[str, list[tuple[str, float]]] = {}
    for name, kept in sorted(versions.items()):
        for version in reversed(kept):  # oldest first
            ndcg = version.metric("holdout_ndcg@10")
            if version.created and ndcg is not None:
                series.setdefault(name, []).append((version.created, ndcg))
    if not series:
        return None
    return charts.version_metrics(series, t("axis.trained_utc"), t("axis.holdout_ndcg"))


def _versions_data(request: Request, settings: Settings, models: ModelStore) -> dict[str, Any]:
    t = texts(request)
    versions = runs.model_versions(settings.model_dir, models.versions())
    return {
        "versions": versions,
        "history": panel(lambda: _history(versions, t), "version history"),
        "curves": panel(lambda: _curves(settings.model_dir, versions, t), "training curves") or [],
    }


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page(
    request: Request, settings: SettingsDep, models: ModelsDep, _: ReadSession
) -> HTMLResponse:
    """Model versions, metrics, training curves and runs (admin: the form starting one)."""
    recent = training_runs(settings).recent(RECENT_RUNS)
    data = {
        **_versions_data(request, settings, models),
        "runs": recent,
        "run": recent[0] if recent else None,
        "trainable": runs.TRAINABLE,
        "configured": settings.models,
        "poll": POLL_SECONDS,
    }
    return render(request, "models.html", data)


@router.get("/models/versions", response_class=HTMLResponse, include_in_schema=False)
def versions_panel(
    request: Request, settings: SettingsDep, models: ModelsDep, _: ReadSession
) -> HTMLResponse:
    """The versions, metrics and curves (an htmx fragment, reloaded when a run ends)."""
    return render(request, "_model_versions.html", _versions_data(request, settings, models))


def _run_or_404(settings: Settings, run_id: str) -> runs.TrainingRun:
    run = training_runs(settings).get(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no training run {run_id!r}")
    return run


@router.get("/models/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def run_page(
    request: Request, run_id: RunId, settings: SettingsDep, _: ReadSession
) -> HTMLResponse:
    """One run's progress and log, kept after it ended."""
    run = training_runs(settings).get(run_id)
    if run is None:
        return render(request, "not_found.html", {"kind": "run", "id": run_id}, 404)
    return render(request, "run.html", {"run": run, "poll": POLL_SECONDS, "log_open": True})


@router.get("/models/runs/{run_id}/progress", response_class=HTMLResponse, include_in_schema=False)
def run_progress(
    request: Request, run_id: RunId, settings: SettingsDep, _: ReadSession
) -> HTMLResponse:
    """A run's progress panel (an htmx fragment, polled while it runs).

    The answer that first sees the run ended asks the page to reload its versions."""
    run = _run_or_404(settings, run_id)
    answer = render(request, "_run.html", {"run": run, "poll": POLL_SECONDS})
    if run.state != runs.RUNNING:
        answer.headers["HX-Trigger"] = "models-trained"
    return answer


@router.post("/models/train", response_class=HTMLResponse, include_in_schema=False)
async def start_training(
    request: Request,
    settings: SettingsDep,
    sessions: SessionFactoryDep,
    models: ModelsDep,
    console: AdminSession,
) -> HTMLResponse:
    """Start a training run of the models ticked (409 while another run is going on)."""
    fields = await auth.form_fields(request)
    names = [key.removeprefix(MODEL_FIELD) for key in fields if key.startswith(MODEL_FIELD)]
    t = texts(request)
    try:
        run = await run_in_threadpool(
            training_runs(settings).start,
            names,
            settings,
            sessions,
            models,
            started_by=console.principal.key_id,
            validate=fields.get("validate") == "on",
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except runs.RunInProgress as exc:
        going = exc.running
        detail = (
            t("run.busy", models=", ".join(going.models), started=going.started[11:19])
            if going
            else t("run.busy_unknown")
        )
        raise HTTPException(status.HTTP_409_CONFLICT, detail=detail) from None
    return render(request, "_run.html", {"run": run, "poll": POLL_SECONDS})
