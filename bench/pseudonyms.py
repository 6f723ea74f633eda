"""What pseudonymous user ids (AGORA_PSEUDONYMIZE_IDS=1) cost, side by side with plain ids in
one run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pseudonyms.py [--users 5000] [--events 50000]

Measured, each plain and sealed:

1. sealing and opening one id (:class:`agora.db.pseudonyms.IdSealer`), microseconds;
2. writing events through ``POST /events`` (batches of 1,000, in process, SQLite file): events/s;
3. a feed page (``GET /users/{id}/feed``) after training, p50 and p95 ms over 300 pages;
4. loading an ALS artefact of ``--artefact-users`` users (its ids opened on loading), seconds.

Writes ``bench/results/pseudonyms.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _record import run_record
from fastapi.testclient import TestClient
from rich.console import Console
from rich.table import Table

from agora.api.app import create_app
from agora.config import Settings
from agora.db.pseudonyms import IdSealer
from agora.evaluation.training import train_from_store
from agora.features.interactions import Interactions
from agora.models.artifacts import load_artifact, save_artifact
from agora.models.registry import create_model

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
SECRET = "a benchmark secret, not a real one"
ADMIN = {"Authorization": "Bearer bench-admin"}
console = Console(soft_wrap=True)


def per_id_micros(n: int = 100_000) -> dict[str, float]:
    sealer = IdSealer(SECRET)
    ids = [f"user-{i:07d}" for i in range(n)]
    started = time.perf_counter()
    sealed = [sealer.seal(u) for u in ids]
    seal = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for text in sealed:
        sealer.open(text)
    return {
        "seal_us": round(seal, 2),
        "open_us": round((time.perf_counter() - started) / n * 1e6, 2),
    }


def store_run(folder: Path, sealed: bool, users: int, events: int, seed: int = 7) -> dict:
    """Events written through the API, then a trained feed's page latency."""
    extra = {"pseudonymize_ids": True, "id_secret": SECRET} if sealed else {}
    settings = Settings(
        data_dir=folder / "data",
        database_url=f"sqlite:///{folder / 'agora.db'}",
        api_key="bench-admin",
        models=["trending", "als"],
        **extra,
    )
    rng = np.random.default_rng(seed)
    n_items = max(users // 2, 50)
    now = datetime.now(UTC)
    with TestClient(create_app(settings)) as client:
        for i in range(n_items):
            body = {"title": f"post {i}", "tags": [f"t{i % 20}"]}
            assert client.put(f"/items/p{i}", json=body, headers=ADMIN).status_code == 201
        who = rng.integers(0, users, events)
        what = np.minimum(rng.zipf(1.3, events) - 1, n_items - 1)
        batches = [
            [
                {
                    "event_id": f"e{j}",
                    "user_id": f"member-{who[j]:06d}",
                    "item_id": f"p{what[j]}",
                    "type": "like",
                    "timestamp": (now - timedelta(minutes=int(j % 40_000))).isoformat(),
                }
                for j in range(start, min(start + 1000, events))
            ]
            for start in range(0, events, 1000)
        ]
        started = time.perf_counter()
        for batch in batches:
            assert client.post("/events", json=batch, headers=ADMIN).status_code == 201
        write_seconds = time.perf_counter() - started
        with client.app.state.sessions() as session:
            train_from_store(
                session, ["trending", "als"], settings.model_dir, settings.event_weights,
                {"als": {"factors": 32}}, validate=False,
            )  # fmt: skip
        assert client.post("/admin/reload", headers=ADMIN).status_code == 200
        readers = [f"member-{u:06d}" for u in rng.choice(np.unique(who), 300)]
        for user in readers[:20]:  # warm-up: models loaded, records built
            client.get(f"/users/{user}/feed", headers=ADMIN)
        times = []
        for user in readers:
            t0 = time.perf_counter()
            assert client.get(f"/users/{user}/feed", headers=ADMIN).status_code == 200
            times.append((time.perf_counter() - t0) * 1000)
    return {
        "events_per_s": round(events / write_seconds),
        "page_p50_ms": round(float(np.percentile(times, 50)), 2),
        "page_p95_ms": round(float(np.percentile(times, 95)), 2),
    }


def artefact_load(folder: Path, sealed: bool, users: int, items: int = 5000) -> float:
    rng = np.random.default_rng(3)
    matrix = sp.random(users, items, density=20 / items, format="csr", random_state=rng)
    matrix.data[:] = 1.0
    interactions = Interactions(
        matrix=matrix,
        user_ids=np.asarray([f"member-{u:07d}" for u in range(users)], dtype=object),
        item_ids=np.asarray([f"p{i}" for i in range(items)], dtype=object),
    )
    model = create_model("als", factors=16, iterations=2).fit(interactions, None)
    ids = IdSealer(SECRET) if sealed else None
    path = save_artifact(model, folder / "models", interactions, ids=ids)
    started = time.perf_counter()
    loaded = load_artifact(path, ids)
    seconds = time.perf_counter() - started
    assert loaded.user_index["member-0000001"] == 1
    return round(seconds, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--artefact-users", type=int, default=200_000)
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, dict] = {"plain": {}, "sealed": {}}
    micro = per_id_micros()
    for kind in ("plain", "sealed"):
        with tempfile.TemporaryDirectory() as tmp:
            console.print(f"{kind}: writing {args.events:,} events, training, paging")
            results[kind] = store_run(Path(tmp), kind == "sealed", args.users, args.events)
        with tempfile.TemporaryDirectory() as tmp:
            results[kind]["artefact_load_s"] = artefact_load(
                Path(tmp), kind == "sealed", args.artefact_users
            )
    table = Table(title="plain and sealed user ids, one run")
    table.add_column("measure")
    for kind in results:
        table.add_column(kind, justify="right")
    table.add_column("sealed / plain", justify="right")
    for key in results["plain"]:
        plain, sealed = results["plain"][key], results["sealed"][key]
        table.add_row(key, f"{plain:,}", f"{sealed:,}", f"{sealed / plain:.2f}")
    console.print(table)
    console.print(f"one id: sealed in {micro['seal_us']} us, opened in {micro['open_us']} us")
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "run": run_record(vars(args)),
        "per_id": micro,
        "results": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (RESULTS / "pseudonyms.json").write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {RESULTS / 'pseudonyms.json'}")


if __name__ == "__main__":
    main()
