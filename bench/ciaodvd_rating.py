"""CiaoDVD rating prediction, with and without the trust graph (agora.models.trust_rating).

    .venv/bin/python bench/make_ciaodvd_split.py /tmp/ciaodvd-split
    .venv/bin/python bench/ciaodvd_rating.py [/tmp/ciaodvd-split] [--regs 0.02,0.05,0.1]
        [--trust-regs 0.1,0.5,1.0]

Hyper-parameters are chosen on valid RMSE only: first ``reg`` for the model without trust,
then, with that ``reg``, ``trust_reg`` for the model with trust; each chosen model is scored
once on test (RMSE, MAE; predictions clipped to 1..5). Writes nothing into the repository;
prints a rich table and, with ``--json``, writes the rows there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from _record import run_record
from rich.console import Console
from rich.table import Table

from agora.models.trust_rating import TrustMF, rmse_mae


def load(split: Path) -> dict:
    parts = {}
    for name in ("train", "valid", "test"):
        rows = [line.rstrip("\n").split("\t") for line in (split / f"{name}.tsv").open()][1:]
        parts[name] = rows
    trust_rows = [line.rstrip("\n").split("\t") for line in (split / "social.tsv").open()][1:]
    users: dict[str, int] = {}
    items: dict[str, int] = {}
    for name in ("train", "valid", "test"):
        for u, i, *_ in parts[name]:
            users.setdefault(u, len(users))
            items.setdefault(i, len(items))
    for a, b in trust_rows:
        users.setdefault(a, len(users))
        users.setdefault(b, len(users))
    out = {"n_users": len(users), "n_items": len(items)}
    for name, rows in parts.items():
        out[name] = (
            np.array([users[r[0]] for r in rows]),
            np.array([items[r[1]] for r in rows]),
            np.array([float(r[2]) for r in rows], dtype=np.float32),
        )
    n = len(users)
    rows_, cols_ = zip(*((users[a], users[b]) for a, b in trust_rows), strict=True)
    out["trust"] = sp.csr_matrix((np.ones(len(rows_), np.float32), (rows_, cols_)), shape=(n, n))
    return out


def fit(data: dict, trust: bool, **params) -> tuple[TrustMF, float]:
    t0 = time.perf_counter()
    model = TrustMF(**params).fit(
        data["n_users"],
        data["n_items"],
        *data["train"],
        trust=data["trust"] if trust else None,
        valid=data["valid"],
    )
    return model, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split", nargs="?", default="/tmp/ciaodvd-split")
    parser.add_argument("--regs", default="0.02,0.05,0.1")
    parser.add_argument("--trust-regs", default="0.1,0.5,1.0")
    parser.add_argument("--trust-influence", default="1", help="0: SocialMF term only")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    data = load(Path(args.split))
    console = Console()
    tried = []
    best_reg = None
    for reg in (float(x) for x in args.regs.split(",")):
        model, secs = fit(data, False, reg=reg)
        tried.append({"trust": False, "reg": reg, "valid_rmse": model.best_valid_rmse_})
        console.print(f"no trust reg {reg}: valid RMSE {model.best_valid_rmse_:.4f} ({secs:.1f}s)")
        if best_reg is None or model.best_valid_rmse_ < best_reg[0]:
            best_reg = (model.best_valid_rmse_, reg, model, secs)
    best_trust = None
    for treg in (float(x) for x in args.trust_regs.split(",")):
        model, secs = fit(
            data,
            True,
            reg=best_reg[1],
            trust_reg=treg,
            trust_influence=args.trust_influence != "0",
        )
        tried.append(
            {
                "trust": True,
                "reg": best_reg[1],
                "trust_reg": treg,
                "valid_rmse": model.best_valid_rmse_,
            }
        )
        console.print(
            f"trust reg {best_reg[1]} trust_reg {treg}: "
            f"valid RMSE {model.best_valid_rmse_:.4f} ({secs:.1f}s)"
        )
        if best_trust is None or model.best_valid_rmse_ < best_trust[0]:
            best_trust = (model.best_valid_rmse_, treg, model, secs)
    table = Table(title=f"CiaoDVD rating prediction, test ({args.split})")
    for col in ("model", "params", "valid RMSE", "test RMSE", "test MAE", "fit s", "epoch"):
        table.add_column(col)
    rows = []
    for label, (vr, _, model, secs) in (
        ("biased MF (no trust)", best_reg),
        ("TrustMF (trust)", best_trust),
    ):
        u, i, r = data["test"]
        rmse, mae = rmse_mae(model.predict(u, i), r)
        params = {"reg": model.reg, "trust_reg": 0.0, "trust_influence": False}
        if label.startswith("TrustMF"):
            params.update(trust_reg=model.trust_reg, trust_influence=model.trust_influence)
        rows.append(
            {
                "model": label,
                **params,
                "valid_rmse": vr,
                "test_rmse": rmse,
                "test_mae": mae,
                "fit_seconds": secs,
                "best_epoch": model.best_epoch_,
            }
        )
        table.add_row(
            label,
            json.dumps(params),
            f"{vr:.4f}",
            f"{rmse:.4f}",
            f"{mae:.4f}",
            f"{secs:.1f}",
            str(model.best_epoch_),
        )
    console.print(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"run": run_record(vars(args)), "rows": rows, "tried": tried}, indent=2)
        )


if __name__ == "__main__":
    main()
