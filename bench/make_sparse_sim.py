"""A large sparse split simulated from public statistics: Gowalla's size and long tails.

    .venv/bin/python bench/make_sparse_sim.py [DEST] [--seed 2020]
    (default DEST: /tmp/gowalla-sim; then bench/auto_budget.py --root /tmp --split gowalla-sim)

Sizes are those LightGCN's paper (He et al., SIGIR 2020, table 1) gives for its Gowalla check-in
set: 29,858 users, 40,981 items, 1,027,370 interactions (a 10-core). The data is simulated,
not Gowalla's:

* **Users' degrees**: 10 plus a log-normal tail (sigma 1.2), scaled to the interaction total
  and capped at 1,500, so most users have 10-30 items and a few hundreds.
* **Items' popularity**: Zipf-like, weight ``(rank + 10) ** -0.9``, so a few items are
  everywhere and most are rare.
* **Structure**: 100 regions; every item is in one, every user has a home region, and 85% of
  a user's items come from the home region (by popularity inside it), 15% from all items (by
  popularity), without repeats. Without a structure there would be nothing to learn.
* **Split**: per user 80/10/10 at random (``make_reseeded_split.split_sizes``, RecBole's
  rounding), timestamps 0 (not chronological: no sequential candidate).

Writes ``train.tsv``, ``valid.tsv``, ``test.tsv`` and a README.md with the drawn statistics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from make_reseeded_split import HEADER, split_sizes

USERS, ITEMS, INTERACTIONS = 29_858, 40_981, 1_027_370
REGIONS = 100
HOME_SHARE = 0.85
MIN_DEGREE, MAX_DEGREE = 10, 1_500


def degrees(rng: np.random.Generator) -> np.ndarray:
    """Users' item counts: ``MIN_DEGREE`` plus a log-normal tail scaled to the total."""
    tail = rng.lognormal(0.0, 1.2, USERS)
    tail *= (INTERACTIONS - MIN_DEGREE * USERS) / tail.sum()
    return np.minimum(MIN_DEGREE + np.round(tail).astype(np.int64), MAX_DEGREE)


def draw(rng: np.random.Generator, cdf: np.ndarray, pool: np.ndarray, n: int) -> np.ndarray:
    """``n`` items of ``pool`` by the popularity whose cumulative sum is ``cdf``."""
    return pool[np.minimum(np.searchsorted(cdf, rng.random(n)), len(pool) - 1)]


def simulate(seed: int) -> list[np.ndarray]:
    """Each user's items (distinct), drawn as the module docstring says."""
    rng = np.random.default_rng(seed)
    popularity = (rng.permutation(ITEMS) + 10.0) ** -0.9
    region = rng.integers(0, REGIONS, ITEMS)
    everyone = np.arange(ITEMS)
    cdf_all = np.cumsum(popularity) / popularity.sum()
    pools = [np.flatnonzero(region == r) for r in range(REGIONS)]
    cdfs = [np.cumsum(popularity[p]) / popularity[p].sum() for p in pools]
    homes = rng.integers(0, REGIONS, USERS)
    out = []
    for home, n in zip(homes, degrees(rng), strict=True):
        n = int(min(n, len(pools[home])))
        chosen = np.unique(draw(rng, cdfs[home], pools[home], int(n * HOME_SHARE) + 1))
        while len(chosen) < n:  # the rest from all items, no repeats
            more = draw(rng, cdf_all, everyone, 2 * (n - len(chosen)))
            chosen = np.union1d(chosen, more)
        out.append(rng.permutation(chosen)[:n])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", type=Path, default=Path("/tmp/gowalla-sim"))
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    parts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for user, items in enumerate(simulate(args.seed)):
        n_train, n_valid, _ = split_sizes(len(items))
        cuts = {"train": items[:n_train], "valid": items[n_train : n_train + n_valid],
                "test": items[n_train + n_valid :]}  # fmt: skip
        for part, chosen in cuts.items():
            parts[part].extend(f"{user}\t{i}\t1\t0\n" for i in sorted(chosen))
    for part, rows in parts.items():
        (args.dest / f"{part}.tsv").write_text(HEADER + "".join(rows))
    counts = {part: len(rows) for part, rows in parts.items()}
    used = {line.split("\t")[1] for rows in parts.values() for line in rows}
    (args.dest / "README.md").write_text(
        f"# {args.dest.name}\n\nSimulated by `bench/make_sparse_sim.py --seed {args.seed}` "
        f"(see its docstring): {USERS:,} users, {len(used):,} items with an interaction, "
        f"{sum(counts.values()):,} interactions; train {counts['train']:,}, valid "
        f"{counts['valid']:,}, test {counts['test']:,}.\n"
    )
    print(f"wrote {args.dest}: {counts}, {len(used):,} items used")


if __name__ == "__main__":
    main()
