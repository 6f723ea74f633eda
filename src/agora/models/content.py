"""Content-based recommender: TF-IDF over item text and tags, cosine to a user profile.

Text is tokenised by :func:`agora.features.text.tokenize` (English words, jieba for Chinese);
tags form their own vocabulary (``#tag`` tokens) whose TF-IDF weights are multiplied by
``tag_weight`` before the row is L2-normalised. The matrix is built with scikit-learn's
``TfidfVectorizer``; only its vocabulary (``terms_``, in column order) and ``idf_`` are kept,
plus the normalised item matrix, so nothing is pickled and new text is vectorised the same way
(:meth:`ContentModel.transform`). A user's profile is the interaction-weighted mean of the
TF-IDF rows of the history items; the score is its cosine with every item. Items need no
interactions (new content scores as soon as it has text).
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.features.text import tag_tokens, tokenize
from agora.models.base import Recommender


def _identity(doc: list[str]) -> list[str]:
    return doc


def _normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ m)


class ContentModel(Recommender):
    """TF-IDF item vectors (text + weighted tags); score = cosine(user profile, item)."""

    name: ClassVar[str] = "content"

    def __init__(
        self,
        tag_weight: float = 2.0,
        min_df: int = 1,
        max_features: int | None = None,
        sublinear_tf: bool = True,
    ) -> None:
        self.tag_weight = tag_weight
        self.min_df = min_df
        self.max_features = max_features
        self.sublinear_tf = sublinear_tf

    # -- documents ----------------------------------------------------------------------
    @staticmethod
    def documents(side: SideData | None, n_items: int) -> list[list[str]]:
        """Token lists per item: text tokens, ``#tag`` tokens, then ``media:`` tokens (kinds,
        lengths, sizes of its images, video and audio: ``features.store.media_tokens``)."""
        texts = side.texts if side is not None and side.texts is not None else [None] * n_items
        tags = side.tags if side is not None and side.tags is not None else [None] * n_items
        media = side.media if side is not None and side.media is not None else [[]] * n_items
        if len(texts) != n_items or len(tags) != n_items or len(media) != n_items:
            raise ValueError(f"SideData texts/tags/media must have {n_items} rows")
        return [
            tokenize(t) + tag_tokens(g) + list(m)
            for t, g, m in zip(texts, tags, media, strict=True)
        ]

    def fit(
        self,
        interactions: Interactions,
        side: SideData | None = None,
        valid: sp.csr_matrix | None = None,
    ) -> Self:
        """Fit the vocabulary and idf on the item documents and store the item matrix."""
        # imported here: scoring a saved model needs no scikit-learn, and loading it at import
        # cost every command and server start about a second
        from sklearn.feature_extraction.text import TfidfVectorizer

        n_items = interactions.n_items
        docs = self.documents(side, n_items)
        terms = np.empty(0, dtype=str)
        idf = np.empty(0, dtype=np.float64)
        if any(docs):
            vec = TfidfVectorizer(
                analyzer=_identity,
                min_df=self.min_df,
                max_features=self.max_features,
                sublinear_tf=self.sublinear_tf,
                norm=None,
            )
            try:
                vec.fit(docs)
            except ValueError:  # empty vocabulary after min_df pruning
                vec = None
            if vec is not None:
                vocab = vec.vocabulary_
                terms = np.empty(len(vocab), dtype=object)
                for term, col in vocab.items():
                    terms[col] = term
                terms = terms.astype(str)
                idf = np.asarray(vec.idf_, dtype=np.float64)
        self.terms_ = terms
        self.idf_ = idf
        self._vocab = {t: i for i, t in enumerate(self.terms_.tolist())}
        self.item_matrix_ = self._vectorize(docs)
        return self

    # -- vectorising ----------------------------------------------------------------------
    def _vocabulary(self) -> dict[str, int]:
        vocab = getattr(self, "_vocab", None)
        if vocab is None or len(vocab) != len(self.terms_):
            vocab = {t: i for i, t in enumerate(self.terms_.tolist())}
            self._vocab = vocab
        return vocab

    def _vectorize(self, docs: list[list[str]]) -> sp.csr_matrix:
        """TF-IDF rows exactly as TfidfVectorizer (raw or 1+log tf, times idf), tag columns
        scaled by ``tag_weight``, rows L2-normalised."""
        vocab = self._vocabulary()
        rows, cols, vals = [], [], []
        for r, doc in enumerate(docs):
            for term, count in Counter(doc).items():
                col = vocab.get(term)
                if col is None:
                    continue
                tf = 1.0 + np.log(count) if self.sublinear_tf else float(count)
                weight = tf * self.idf_[col]
                if term.startswith("#"):
                    weight *= self.tag_weight
                rows.append(r)
                cols.append(col)
                vals.append(weight)
        m = sp.csr_matrix((vals, (rows, cols)), shape=(len(docs), len(self.terms_)))
        m.sort_indices()
        return _normalize_rows(m)

    def transform(self, texts: list[str], tags: list[list[str]] | None = None) -> sp.csr_matrix:
        """TF-IDF rows (normalised) for new text, in the fitted vocabulary."""
        tags = tags if tags is not None else [[] for _ in texts]
        docs = [tokenize(t) + tag_tokens(g) for t, g in zip(texts, tags, strict=True)]
        return self._vectorize(docs)

    def score_text(self, query: str) -> np.ndarray:
        """Cosine of free text against every item (e.g. search); zeros when nothing matches."""
        return self.cosine(self.transform([query]))

    def cosine(self, row: sp.csr_matrix) -> np.ndarray:
        """Cosine of one TF-IDF row (from :meth:`transform`) against every item."""
        return np.asarray((row @ self.item_matrix_.T).toarray()).ravel()

    def profiles(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """Each history row's interaction-weighted mean of item vectors, L2-normalised."""
        return _normalize_rows(sp.csr_matrix(history, dtype=np.float64) @ self.item_matrix_)

    # -- recommender interface -------------------------------------------------------------
    def score(
        self, users: np.ndarray, history: sp.csr_matrix, times: sp.csr_matrix | None = None
    ) -> np.ndarray:
        """Cosine between each user's weighted-mean profile and every item."""
        profiles = self.profiles(history)
        return np.asarray((profiles @ self._columns()).toarray(), dtype=np.float32)

    def _columns(self) -> sp.csr_matrix:
        """The item matrix transposed, as CSR, built once: a product with ``.T`` (CSC) would
        convert it on every call, most of a user's scoring time at 100k items."""
        held = getattr(self, "_columns_", None)
        if held is None or held.shape[1] != self.item_matrix_.shape[0]:
            held = self._columns_ = sp.csr_matrix(self.item_matrix_.T)
        return held

    def similar_items(self, item: int, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items with the most similar TF-IDF vector (cosine)."""
        sims = np.asarray((self.item_matrix_[item] @ self.item_matrix_.T).toarray()).ravel()
        sims[item] = -np.inf
        n = min(n, len(sims) - 1)
        order = np.argsort(-sims, kind="stable")[:n]
        return order.astype(np.int64), sims[order]


def nearest(model: ContentModel, row: sp.csr_matrix, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` items closest (cosine) to one TF-IDF row, e.g. new text through
    :meth:`ContentModel.transform`; items with zero similarity are left out."""
    scores = model.cosine(row)
    order = np.argsort(-scores, kind="stable")[:n]
    keep = scores[order] > 0
    return order[keep].astype(np.int64), scores[order][keep]


def search(model: ContentModel, query: str, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` items for a free-text query (items with zero similarity are left out)."""
    return nearest(model, model.transform([query]), n)
