"""Make a random 80/10/10 rating split of CiaoDVD (Guo et al. 2014) with its trust graph.

    .venv/bin/python bench/make_ciaodvd_split.py [DEST] [--seed 2024] [--source DIR]
    (defaults: DEST /tmp/ciaodvd-split, source ../shared/data/ciaodvd-guo)

The data may not be committed: the split is written outside the repository.

Procedure:
1. ``movie-ratings.txt`` (userID, movieID, genreID, reviewID, rating 1-5, YYYY-MM-DD): 72,665
   rows. A (user, movie) pair rated more than once (303 pairs) keeps its latest row (by date,
   then file order), so every pair is one rating: 72,345 ratings.
2. The ratings, sorted by (user, movie), are permuted with ``np.random.default_rng(seed)``;
   the first 80% (``int(0.8 n)``) go to train, the next 10% (``int(0.1 n)``) to valid, the
   rest to test (a global random split, the usual protocol for rating prediction).
3. ``trusts.txt`` (trustor, trustee, 1; directed) becomes ``social.tsv``
   (``user_id<TAB>friend_id``, trustor first), self-trust and repeated rows dropped.

Files: ``train.tsv``, ``valid.tsv``, ``test.tsv`` with the benchmark header
``user_id<TAB>item_id<TAB>rating<TAB>timestamp`` (timestamp = epoch seconds of the date, UTC),
rows sorted by (user, item); ``social.tsv``; ``README.md`` with counts and the seed.
"""

from __future__ import annotations

import argparse
import calendar
from pathlib import Path

import numpy as np

HEADER = "user_id\titem_id\trating\ttimestamp\n"


def read_ratings(path: Path) -> list[tuple[int, int, int, int]]:
    """(user, item, rating, epoch seconds) with one row per (user, item): the latest."""
    latest: dict[tuple[int, int], tuple[int, int, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh):
            if not line.strip():
                continue
            user, item, _genre, _review, rating, date = line.strip().split(",")
            y, m, d = (int(p) for p in date.split("-"))
            ts = calendar.timegm((y, m, d, 0, 0, 0))
            key = (int(user), int(item))
            if key not in latest or (ts, lineno) >= latest[key][1:]:
                latest[key] = (int(rating), ts, lineno)
    return sorted((u, i, r, ts) for (u, i), (r, ts, _) in latest.items())


def read_trust(path: Path) -> list[tuple[int, int]]:
    pairs = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                a, b, _ = line.strip().split(",")
                if a != b:
                    pairs.add((int(a), int(b)))
    return sorted(pairs)


def make_split(source: Path, dest: Path, seed: int) -> dict[str, int]:
    ratings = read_ratings(source / "movie-ratings.txt")
    n = len(ratings)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(0.8 * n), int(0.1 * n)
    parts = {
        "train": perm[:n_train],
        "valid": perm[n_train : n_train + n_valid],
        "test": perm[n_train + n_valid :],
    }
    dest.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, idx in parts.items():
        rows = sorted(ratings[i] for i in idx)
        with (dest / f"{name}.tsv").open("w", encoding="utf-8") as fh:
            fh.write(HEADER)
            fh.writelines(f"{u}\t{i}\t{r}\t{ts}\n" for u, i, r, ts in rows)
        counts[name] = len(rows)
    trust = read_trust(source / "trusts.txt")
    with (dest / "social.tsv").open("w", encoding="utf-8") as fh:
        fh.write("user_id\tfriend_id\n")
        fh.writelines(f"{a}\t{b}\n" for a, b in trust)
    counts["trust"] = len(trust)
    (dest / "README.md").write_text(
        f"# CiaoDVD random 80/10/10 rating split (seed {seed})\n\n"
        f"Made by bench/make_ciaodvd_split.py from {source}; see its docstring.\n\n"
        + "".join(f"- {k}: {v:,}\n" for k, v in counts.items())
    )
    return counts


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", default="/tmp/ciaodvd-split")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--source", default=here / ".." / "shared/data/ciaodvd-guo")
    args = parser.parse_args()
    counts = make_split(Path(args.source), Path(args.dest), args.seed)
    print(f"wrote {args.dest}: {counts}")


if __name__ == "__main__":
    main()
