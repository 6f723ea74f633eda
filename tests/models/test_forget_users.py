"""Erasing a user from a trained model (``forget_users``) and from an artefact on disk
(``agora.models.artifacts.forget_user``): their id and per-user rows are gone from every file,
and every other user is scored exactly as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.artifacts import forget_user, load_artifact, save_artifact
from agora.models.registry import create_model

pytest.importorskip("torch")

GRAPH = {"factors": 8, "layers": 2, "epochs": 3, "batch_size": 32, "num_threads": 1,
         "progress": False}  # fmt: skip
CASES = {
    "als": {"factors": 8, "iterations": 3},
    "bpr": {"factors": 8, "iterations": 5},
    "lightgcn": GRAPH,
    "social": GRAPH,
    "sasrec": {"hidden": 16, "layers": 1, "epochs": 2, "verbose": False},
    "hybrid": {"members": {"als": {"factors": 8, "iterations": 3}, "itemknn": {}}},
}
GONE = "member-0007"


def _data() -> tuple[Interactions, SideData]:
    """40 users on 30 items with times; member 7 has friends (8, 9) and so do 1 and 2."""
    rng = np.random.default_rng(3)
    rows, cols = np.nonzero(rng.random((40, 30)) < 0.2)
    stamps = rng.integers(1_600_000_000, 1_700_000_000, len(rows)).astype(float)
    inter = Interactions.from_triples(
        [f"member-{r:04d}" for r in rows], [f"i{c}" for c in cols], timestamps=stamps,
        item_ids=[f"i{c}" for c in range(30)], user_ids=[f"member-{u:04d}" for u in range(40)],
    )  # fmt: skip
    pairs = [(7, 8), (8, 7), (7, 9), (9, 7), (1, 2), (2, 1)]
    src, dst = zip(*pairs, strict=True)
    social = sp.csr_matrix((np.ones(len(pairs), np.float32), (src, dst)), shape=(40, 40))
    return inter, SideData(social=social)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.parametrize("name", list(CASES))
def test_an_erased_user_leaves_the_artefact_and_the_others_score_the_same(
    name: str, tmp_path: Path
) -> None:
    inter, side = _data()
    model = create_model(name, **CASES[name])
    if name == "hybrid":
        valid = sp.csr_matrix(inter.matrix.shape, dtype=np.float32)
        valid[np.arange(40), np.arange(40) % 30] = 1.0
        model.fit(inter, side, valid=sp.csr_matrix(valid))
    else:
        model.fit(inter, side)
    path = save_artifact(model, tmp_path, inter)
    row = inter.user_index(GONE)
    # the learned vectors of the user (whose bytes could not turn up in a file by chance)
    user_rows = {
        attr: np.take(getattr(m, attr), [row], axis=axis).tobytes()
        for m in getattr(model, "_models", [model])
        for attr, axis in m.user_arrays.items()
        if hasattr(m, attr) and getattr(m, attr).dtype.kind == "f" and getattr(m, attr).ndim > 1
    }
    assert user_rows or name == "sasrec"
    others = np.array([u for u in range(40) if u not in (row, 8, 9)])  # not its friends
    before = model.score(others, inter.matrix[others])

    assert forget_user(path, GONE)
    assert not forget_user(path, GONE)  # a second erasure finds nothing

    assert _files_holding(tmp_path, GONE.encode()) == []
    assert _files_holding(tmp_path, GONE.encode("utf-32-le")) == []
    for attr, raw in user_rows.items():
        assert _files_holding(tmp_path, raw) == [], attr
    loaded = load_artifact(path)
    assert GONE not in loaded.user_index and loaded.user_ids[row] == ""
    assert loaded.user_ids.tolist()[:row] == list(inter.user_ids[:row])
    assert loaded.meta["erasures"] == 1
    np.testing.assert_allclose(loaded.model.score(others, inter.matrix[others]), before, rtol=1e-5)
