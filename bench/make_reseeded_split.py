"""Re-split a benchmark split folder with another seed, to check that settings chosen on one
random split hold up on another.

    .venv/bin/python bench/make_reseeded_split.py [SRC] [DEST] [--seed 7]
    (defaults: ../shared/benchmarks/lastfm-social -> /tmp/lastfm-social-seed7)

Procedure (the README of ``lastfm-social`` describes the original, seed 2020): the rows of
train.tsv, valid.tsv and test.tsv are pooled; per user (ascending numeric id, else string
order), the user's rows sorted by item id are permuted with ONE ``np.random.default_rng(seed)``
consumed user by user; with n rows, n_valid = int(0.1 n), n_test = int(0.1 n) and RecBole
1.2.1's small-n rule (while n_train > 1: if 0 < 0.1 n < 1 move one row to test, then one more to
valid), the first n_train rows go to train, the next n_valid to valid, the last n_test to test.
``social.tsv`` (and any other non-split file but README.md) is copied unchanged; a README.md
says how the folder was made. The same user/item sets as
the source; output files use the source header and are sorted by (user_id, item_id).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

HEADER = "user_id\titem_id\trating\ttimestamp\n"


def _key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.lstrip("-").isdigit() else (1, value)


def split_sizes(n: int) -> tuple[int, int, int]:
    """(train, valid, test) sizes for a user with n rows (RecBole 1.2.1 rounding)."""
    n_valid, n_test = int(0.1 * n), int(0.1 * n)
    n_train = n - n_valid - n_test
    if n_train > 1 and 0 < 0.1 * n < 1:
        n_train, n_test = n_train - 1, n_test + 1
        if n_train > 1:
            n_train, n_valid = n_train - 1, n_valid + 1
    return n_train, n_valid, n_test


def resplit(src: Path, dest: Path, seed: int) -> dict[str, int]:
    rows: dict[str, list[list[str]]] = {}
    for part in ("train", "valid", "test"):
        with (src / f"{part}.tsv").open(encoding="utf-8") as fh:
            if fh.readline() != HEADER:
                raise ValueError(f"{src / part}.tsv: unexpected header")
            for line in fh:
                if line.strip():
                    f = line.rstrip("\r\n").split("\t")
                    rows.setdefault(f[0], []).append(f)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    for user in sorted(rows, key=_key):
        mine = sorted(rows[user], key=lambda f: _key(f[1]))
        perm = rng.permutation(len(mine))
        n_train, n_valid, _ = split_sizes(len(mine))
        ordered = [mine[i] for i in perm]
        parts["train"] += ordered[:n_train]
        parts["valid"] += ordered[n_train : n_train + n_valid]
        parts["test"] += ordered[n_train + n_valid :]
    dest.mkdir(parents=True, exist_ok=True)
    for part, lines in parts.items():
        lines.sort(key=lambda f: (_key(f[0]), _key(f[1])))
        with (dest / f"{part}.tsv").open("w", encoding="utf-8") as fh:
            fh.write(HEADER)
            fh.writelines("\t".join(f) + "\n" for f in lines)
    for extra in src.iterdir():
        if extra.is_file() and extra.name not in (
            "train.tsv",
            "valid.tsv",
            "test.tsv",
            "README.md",
        ):
            shutil.copyfile(extra, dest / extra.name)
    (dest / "README.md").write_text(
        f"# {src.name}, re-split with seed {seed}\n\nThe rows of {src}/{{train,valid,test}}.tsv "
        "pooled and split again per user 80/10/10 by bench/make_reseeded_split.py (see its "
        "docstring); other files copied unchanged.\n"
    )
    return {part: len(lines) for part, lines in parts.items()}


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", nargs="?", default=here / ".." / "shared/benchmarks/lastfm-social")
    parser.add_argument("dest", nargs="?", default="/tmp/lastfm-social-seed7")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    counts = resplit(Path(args.src), Path(args.dest), args.seed)
    print(f"wrote {args.dest}: {counts} (seed {args.seed})")


if __name__ == "__main__":
    main()
