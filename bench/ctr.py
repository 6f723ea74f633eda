"""CTR models (logistic regression, factorisation machine, DIN attention) against the constant
base rate, by AUC and log loss.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ctr.py [--seeds 3] [--synthetic-rows 40000]

Datasets and splits (fixed; rows are in time order, so the split is first 80% / last 20%):

* criteo: ``../shared/data/criteo-sample/criteo_train_first999.txt``, the first 1,000 rows of
  the Criteo Display Advertising Challenge train.txt: 800 train / 200 test.
* criteo->deepctr: train on those 1,000 rows, test on the 200 rows of DeepCTR's
  ``criteo_sample.txt`` (another slice of the same data, selection unknown).
* avazu: ``../shared/data/avazu-sample/avazu_sample.txt``, the first 100 rows of Avazu's
  train.csv: 80 train / 20 test (4 clicks: the AUC is noise, shown only as a smoke test).
* agora-synthetic: :func:`agora.market.ctr.synthetic_impressions` (seed 0), Agora-shaped rows
  whose clicks depend on whether the ad's topic matches the user's recent items: only a model
  that relates the candidate to the history can beat a per-item model. The true click
  probability gives the oracle AUC.
* cardano-se: impressions built from the bundled community's real behaviour
  (:func:`cardano_impressions`): each answer/comment/bookmark is a click on its post in a
  slate of 5 with 4 posts other users engaged with just before (so popularity at the time
  does not give the click away); the user's earlier posts are the history.
  Positions are random, so position carries no signal here.

These public samples are toy-sized (PROVENANCE.md: "not for meaningful AUC/logloss
benchmarks"); no published figure exists for them and full-data papers (Criteo AUC ~0.80) are
not comparable. DIN only differs from the FM when rows carry ``recent_items``, so it runs on
the Agora rows only. Each model is trained with ``--seeds`` seeds (mean and spread reported);
the constant baseline predicts the training click rate (AUC 0.5).

Prints a table, writes bench/results/ctr.json and bench/results/ctr.png (ROC curves, and a
calibration plot on the Agora rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _record import run_record  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from agora.market.ctr import (  # noqa: E402
    CTRModel,
    ctr_metrics,
    read_avazu,
    read_criteo,
    synthetic_impressions,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "results"


def cardano_impressions(seed: int = 0, slate: int = 5, window: int = 200) -> list[dict]:
    """Impression rows from the bundled Stack Exchange community (data/cardano-se), in time
    order: every answer, comment or bookmark by a user is a click on its post, shown in a
    slate of ``slate`` posts at a random position beside ``slate - 1`` posts other users
    engaged with in the ``window`` engagements before it (active at the time, not clicked by
    this user). ``recent_items`` = the user's earlier posts (asked, answered, commented,
    bookmarked, accepted), newest first."""
    from agora.ingest.stackexchange import load_stackexchange

    ds = load_stackexchange(ROOT / "data" / "cardano-se").dataset
    rng = np.random.default_rng(seed)
    tags = {i.item_id: i.tags for i in ds.items}
    events = sorted((e for e in ds.events if e.timestamp), key=lambda e: (e.timestamp, e.event_id))
    history: dict[str, list[str]] = {}
    active: list[tuple[str, str]] = []  # (user, item) of past engagements
    rows: list[dict] = []
    for e in events:
        past = history.setdefault(e.user_id, [])
        if e.type in ("answer", "comment", "bookmark") and e.item_id in tags:
            pool = sorted({i for u, i in active[-window:] if u != e.user_id and i != e.item_id})
            if len(pool) >= slate - 1:
                shown = [str(i) for i in rng.choice(pool, size=slate - 1, replace=False)]
                shown.insert(int(rng.integers(slate)), e.item_id)
                for pos, item in enumerate(shown):
                    rows.append(
                        {
                            "user_id": e.user_id,
                            "item_id": item,
                            "campaign_id": None,
                            "tags": tags[item],
                            "position": pos,
                            "hour": e.timestamp.hour,
                            "recent_items": past[::-1][:20],
                            "clicked": int(item == e.item_id),
                        }
                    )
            active.append((e.user_id, e.item_id))
        if not past or past[-1] != e.item_id:
            past.append(e.item_id)
    return rows


def datasets(synthetic_rows: int) -> dict[str, dict]:
    """name -> train rows, test rows, kinds to run, notes (and the oracle for synthetic)."""
    criteo = read_criteo(DATA / "criteo-sample" / "criteo_train_first999.txt")
    deepctr = read_criteo(DATA / "criteo-sample" / "deepctr_criteo_sample.txt")
    avazu = read_avazu(DATA / "avazu-sample" / "avazu_sample.txt")
    agora, truth = synthetic_impressions(synthetic_rows, seed=0)
    cut = int(0.8 * len(agora))
    cardano = cardano_impressions()
    cut_se = int(0.8 * len(cardano))
    flat = ["logreg", "fm"]
    return {
        "criteo": {"train": criteo[:800], "test": criteo[800:], "kinds": flat},
        "criteo->deepctr": {"train": criteo, "test": deepctr, "kinds": flat},
        "avazu": {"train": avazu[:80], "test": avazu[80:], "kinds": flat},
        "agora-synthetic": {
            "train": agora[:cut],
            "test": agora[cut:],
            "kinds": ["logreg", "fm", "din"],
            "oracle": truth[cut:],
        },
        "cardano-se": {
            "train": cardano[:cut_se],
            "test": cardano[cut_se:],
            "kinds": ["logreg", "fm", "din"],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="CTR models vs the constant base rate.")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds per model")
    ap.add_argument("--synthetic-rows", type=int, default=40000)
    ap.add_argument("--out", type=Path, default=RESULTS / "ctr.json")
    args = ap.parse_args()
    console = Console(width=130)
    results: dict = {
        "run": run_record(vars(args)),
        "split": "first 80% train / last 20% test by row order (criteo->deepctr: all 1,000 "
        "criteo rows / the 200 DeepCTR rows); fit() holds out its last 10% for early stopping",
        "model_params": CTRModel().get_params(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "datasets": {},
    }
    curves: dict[str, dict[str, np.ndarray]] = {}
    for name, ds in datasets(args.synthetic_rows).items():
        y = np.array([r["clicked"] for r in ds["test"]])
        rate = float(np.mean([r["clicked"] for r in ds["train"]]))
        const = ctr_metrics(y, np.full(len(y), rate), rate)
        entry: dict = {
            "n_train": len(ds["train"]),
            "n_test": len(y),
            "train_click_rate": rate,
            "test_clicks": int(y.sum()),
            "models": {"constant": {"auc": 0.5, "logloss": const["logloss"]}},
        }
        if "oracle" in ds:
            entry["oracle_auc"] = float(roc_auc_score(y, ds["oracle"]))
            entry["oracle_logloss"] = ctr_metrics(y, ds["oracle"], rate)["logloss"]
        curves[name] = {"y": y}
        for kind in ds["kinds"]:
            runs = []
            for seed in range(args.seeds):
                model = CTRModel(kind=kind, seed=seed).fit(ds["train"])
                t = time.perf_counter()
                p = model.predict(ds["test"])
                m = ctr_metrics(y, p, rate)
                m |= {
                    "seed": seed,
                    "fit_seconds": model.fit_seconds_,
                    "predict_seconds": time.perf_counter() - t,
                    "best_epoch": model.best_epoch_,
                }
                runs.append(m)
                if seed == 0:
                    curves[name][kind] = p
                console.log(f"{name} {kind} seed {seed}: AUC {m['auc']:.4f} LL {m['logloss']:.4f}")
            aucs = np.array([r["auc"] for r in runs])
            lls = np.array([r["logloss"] for r in runs])
            entry["models"][kind] = {
                "auc": float(aucs.mean()),
                "auc_sd": float(aucs.std()),
                "logloss": float(lls.mean()),
                "logloss_sd": float(lls.std()),
                "fit_seconds": float(np.mean([r["fit_seconds"] for r in runs])),
                "runs": runs,
            }
        results["datasets"][name] = entry

    table = Table(title=f"CTR: test AUC and log loss (mean ± sd over {args.seeds} seeds)")
    for col in ("dataset", "train/test", "test clicks", "model", "AUC", "log loss", "fit s"):
        table.add_column(col, justify="left" if col in ("dataset", "model") else "right")
    for name, entry in results["datasets"].items():
        rows = list(entry["models"].items())
        if "oracle_auc" in entry:
            rows.append(
                (
                    "oracle (true p)",
                    {"auc": entry["oracle_auc"], "logloss": entry["oracle_logloss"]},
                )
            )
        for i, (kind, m) in enumerate(rows):
            sd = lambda key, m=m: f" ± {m[key]:.3f}" if key in m else ""  # noqa: E731
            table.add_row(
                name if i == 0 else "",
                f"{entry['n_train']}/{entry['n_test']}" if i == 0 else "",
                str(entry["test_clicks"]) if i == 0 else "",
                kind,
                f"{m['auc']:.3f}{sd('auc_sd')}",
                f"{m['logloss']:.4f}{sd('logloss_sd')}",
                f"{m['fit_seconds']:.1f}" if "fit_seconds" in m else "",
            )
    console.print(table)

    ncols = 3
    nrows = -(-(len(curves) + 1) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows))
    axes = list(np.ravel(grid))
    for ax in axes[len(curves) + 1 :]:
        ax.axis("off")
    for ax, (name, c) in zip(axes, curves.items(), strict=False):
        for kind, p in c.items():
            if kind == "y":
                continue
            fpr, tpr, _ = roc_curve(c["y"], p)
            auc = results["datasets"][name]["models"][kind]["runs"][0]["auc"]
            ax.plot(fpr, tpr, label=f"{kind} ({auc:.3f})")
        ax.plot([0, 1], [0, 1], "k:", label="constant (0.5)")
        ax.set(title=f"ROC, {name}", xlabel="false positive rate", ylabel="true positive rate")
        ax.legend(fontsize=8, loc="lower right")
    ax = axes[len(curves)]
    c = curves["agora-synthetic"]
    for kind in ("logreg", "fm", "din"):
        p = c[kind]
        edges = np.quantile(p, np.linspace(0, 1, 11))
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
        pred = [p[which == b].mean() for b in range(10) if np.any(which == b)]
        seen = [c["y"][which == b].mean() for b in range(10) if np.any(which == b)]
        ax.plot(pred, seen, "o-", label=kind)
    top = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([0, top], [0, top], "k:", label="perfect")
    ax.set(
        title="calibration, agora-synthetic (deciles)",
        xlabel="predicted CTR",
        ylabel="observed CTR",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    fig.savefig(png, dpi=110)
    args.out.write_text(json.dumps(results, indent=1))
    console.print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
