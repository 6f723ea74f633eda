"""Fixed benchmark splits (``../shared/benchmarks/*``): ``train/valid/test.tsv`` + ``social.tsv``.

Each split file is tab-separated with the header ``user_id item_id rating timestamp``. Every row
becomes one event of type ``rating`` (or ``event_type``) with ``value`` = the rating column and
``context = {"split": "train" | "valid" | "test"}``, so evaluation code can rebuild the exact split
from the store. Event ids are ``<benchmark>:<split>:<line>`` (benchmark = the folder name).

Timestamps: a non-zero ``timestamp`` column is unix seconds. Rows with 0 (unknown, as in
``ml1m-general`` and ``lastfm-social``) get a synthetic, fixed time: :data:`BENCHMARK_EPOCH` plus
the row's position in the whole benchmark in seconds (train rows first, then valid, then test, each
in file order), so imports are reproducible and keep the file order.

``social.tsv`` (``user_id friend_id``, both directions listed) becomes ``friend`` edges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agora.ingest.errors import ImportFailed, ImportProblem, ProblemCollector
from agora.ingest.schemas import Dataset, EdgeIn, EventIn, ItemIn, UserIn

SPLITS = ("train", "valid", "test")
HEADER = ["user_id", "item_id", "rating", "timestamp"]
SOCIAL_HEADER = ["user_id", "friend_id"]
#: Origin of the synthetic timestamps given to rows whose timestamp column is 0.
BENCHMARK_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def is_benchmark_folder(folder: str | Path) -> bool:
    """True when ``folder`` holds ``train.tsv``."""
    return (Path(folder) / "train.tsv").is_file()


def _rows(
    path: Path, header: list[str], problems: ProblemCollector
) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", encoding="utf-8", newline="") as fh:
        first = fh.readline().rstrip("\r\n").split("\t")
        if first != header:
            problems.add(1, f"header must be {'<TAB>'.join(header)}, found {'<TAB>'.join(first)}")
            return
        for number, line in enumerate(fh, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != len(header):
                problems.add(
                    number, f"expected {len(header)} tab-separated fields, found {len(parts)}"
                )
                continue
            yield number, parts


def load_benchmark(
    folder: str | Path,
    *,
    splits: Sequence[str] = SPLITS,
    event_type: str = "rating",
    name: str | None = None,
    social: bool = True,
) -> Dataset:
    """Import a benchmark split folder; ``name`` (default: the folder name) prefixes event ids."""
    folder = Path(folder)
    if not (folder / "train.tsv").is_file():
        raise ImportFailed(
            [ImportProblem(folder, None, "not a benchmark folder: no train.tsv")], file=folder
        )
    name = name or folder.resolve().name
    users: dict[str, UserIn] = {}
    items: dict[str, ItemIn] = {}
    events: list[EventIn] = []
    position = 0
    for split in splits:
        path = folder / f"{split}.tsv"
        if not path.is_file():
            if split == "train":
                raise ImportFailed([ImportProblem(path, None, "missing split file")], file=path)
            continue
        problems = ProblemCollector(path)
        for number, (uid, iid, rating, ts) in _rows(path, HEADER, problems):
            position += 1
            try:
                value = float(rating)
                seconds = int(ts)
            except ValueError:
                problems.add(number, f"rating {rating!r} or timestamp {ts!r} is not a number")
                continue
            when = (
                datetime.fromtimestamp(seconds, UTC)
                if seconds
                else BENCHMARK_EPOCH + timedelta(seconds=position)
            )
            if uid not in users:
                users[uid] = UserIn(user_id=uid)
            if iid not in items:
                items[iid] = ItemIn(item_id=iid)
            events.append(
                EventIn(
                    event_id=f"{name}:{split}:{number}",
                    user_id=uid,
                    item_id=iid,
                    type=event_type,
                    value=value,
                    timestamp=when,
                    context={"split": split},
                )
            )
        problems.raise_if_any()

    edges: list[EdgeIn] = []
    path = folder / "social.tsv"
    if social and path.is_file():
        problems = ProblemCollector(path)
        for _number, (a, b) in _rows(path, SOCIAL_HEADER, problems):
            if a == b:
                continue
            for uid in (a, b):
                if uid not in users:
                    users[uid] = UserIn(user_id=uid)
            edges.append(EdgeIn(source_id=a, target_id=b, type="friend"))
        problems.raise_if_any()
    return Dataset(
        users=list(users.values()), items=list(items.values()), events=events, edges=edges
    )
