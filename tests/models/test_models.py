import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData
from agora.models.content import ContentModel, search
from agora.models.ease import EASEModel
from agora.models.implicit_mf import ALSModel, BPRModel
from agora.models.itemknn import ItemKNNModel, topk_cosine
from agora.models.popularity import LatestModel, TrendingModel
from agora.models.registry import MODELS, create_model, model_class

DAY = 86_400.0


def top1(model, inter, history, user=-1):
    items, _ = model.recommend(user, history, n=1)
    return inter.item_ids[items[0]]


@pytest.mark.parametrize("cls", [ItemKNNModel, EASEModel])
def test_item_models_recommend_the_co_consumed_item(cls, tiny, history):
    model = cls(**({"reg": 1.0} if cls is EASEModel else {"shrink": 0.0}))
    model.fit(tiny)
    assert top1(model, tiny, history(tiny, ["a"])) == "b"
    assert top1(model, tiny, history(tiny, ["d"])) == "c"
    # the neighbour lists agree
    items, sims = model.similar_items(tiny.item_index("a"), n=1)
    assert tiny.item_ids[items[0]] == "b" and sims[0] > 0


def test_itemknn_shrunk_cosine_by_hand(tiny):
    # a: users u0 u1 u2 u6 (norm 2); b: u0 u1 u2 (norm sqrt 3); overlap 3
    # sim(a, b) = 3 / (2 * sqrt(3) + shrink)
    sim = topk_cosine(tiny.matrix, k=5, shrink=1.0).toarray()
    a, b = tiny.item_index("a"), tiny.item_index("b")
    assert sim[a, b] == pytest.approx(3 / (2 * np.sqrt(3) + 1.0), rel=1e-6)
    assert sim[a, a] == 0.0
    # k = 1 keeps a single neighbour per item
    assert np.all(np.diff(topk_cosine(tiny.matrix, k=1, shrink=0.0).indptr) <= 1)


def test_ease_matches_dense_formula(tiny):
    x = tiny.matrix.toarray().astype(np.float64)
    active = x.sum(axis=0) > 0
    g = x[:, active].T @ x[:, active] + 10.0 * np.eye(active.sum())
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    model = EASEModel(reg=10.0).fit(tiny)
    assert np.allclose(model.weights_, b, atol=1e-5)
    # the cold item f scores 0 for everybody
    scores = model.score(np.array([0]), tiny.matrix[[0]])
    assert scores[0, tiny.item_index("f")] == 0.0
    # float32 path gives the same weights
    model32 = EASEModel(reg=10.0, float32_above=1).fit(tiny)
    assert np.allclose(model32.weights_, b, atol=1e-4)


def test_trending_prefers_recently_popular():
    now = 1_700_000_000.0
    users, items, stamps = [], [], []
    for u in range(5):  # "old": 5 users, 60 days ago
        users.append(f"o{u}")
        items.append("old")
        stamps.append(now - 60 * DAY)
    for u in range(3):  # "new": 3 users, today
        users.append(f"n{u}")
        items.append("new")
        stamps.append(now)
    inter = Interactions.from_triples(users, items, timestamps=stamps)
    trending = TrendingModel(half_life_days=7).fit(inter)
    assert top1(trending, inter, sp.csr_matrix((1, 2))) == "new"
    # long half-life or no timestamps: plain popularity
    assert (
        top1(TrendingModel(half_life_days=3650).fit(inter), inter, sp.csr_matrix((1, 2))) == "old"
    )
    plain = Interactions.from_triples(users, items)
    assert top1(TrendingModel().fit(plain), plain, sp.csr_matrix((1, 2))) == "old"
    # same scores for every user; similar_items falls back to the global ranking
    s = trending.score(np.array([0, 3]), sp.csr_matrix((2, 2)))
    assert np.array_equal(s[0], s[1])
    items_, _ = trending.similar_items(inter.item_index("old"), n=5)
    assert inter.item_ids[items_].tolist() == ["new"]


def test_latest_prefers_newest_then_popularity(tiny, history):
    created = np.array([1.0, 5.0, np.nan, 3.0, np.nan, 9.0])  # a b c d e f
    model = LatestModel().fit(tiny, SideData(created=created))
    items, _ = model.recommend(-1, sp.csr_matrix((1, tiny.n_items)), n=6)
    # dated items newest first (f is cold but newest), then undated by popularity (c: 4, e: 1)
    assert tiny.item_ids[items].tolist() == ["f", "b", "d", "a", "c", "e"]
    # no dates at all: popularity (a: 4 users, c: 4 users -> tie broken stably, b: 3)
    plain = LatestModel().fit(tiny)
    ranked = tiny.item_ids[plain.recommend(-1, sp.csr_matrix((1, 6)), n=3)[0]].tolist()
    assert set(ranked[:2]) == {"a", "c"} and ranked[2] == "b"
    # history items are never recommended
    assert "f" not in tiny.item_ids[model.recommend(-1, history(tiny, ["f"]), n=6)[0]]


def _content_side() -> tuple[Interactions, SideData]:
    texts = [
        "Learning Python for data science and machine learning",
        "我们今天讨论推荐系统和机器学习的最新进展",
        "Gardening tips: growing tomatoes and flowers in spring",
        "周末去公园种花，春天的花园很美",
        "A beginner guide to Rust programming",
        "机器学习入门：用Python搭建推荐系统",
    ]
    tags = [["python", "ml"], ["推荐"], ["garden"], ["花园"], ["rust"], ["ml"]]
    item_ids = [f"p{i}" for i in range(6)]
    inter = Interactions.from_triples(["u0"], ["p0"], item_ids=item_ids)  # p1..p4: no events
    return inter, SideData(texts=texts, tags=tags)


def test_content_matches_chinese_and_english_queries():
    inter, side = _content_side()
    model = ContentModel().fit(inter, side)
    items, scores = search(model, "推荐系统", n=3)
    assert set(inter.item_ids[items].tolist()) == {"p1", "p5"} and scores[0] > 0
    items, _ = search(model, "讨论推荐系统的最新进展", n=1)
    assert inter.item_ids[items[0]] == "p1"
    items, _ = search(model, "种花的花园", n=1)
    assert inter.item_ids[items[0]] == "p3"
    items, _ = search(model, "growing flowers", n=1)
    assert inter.item_ids[items[0]] == "p2"
    assert len(search(model, "zzzz unknownword", n=3)[0]) == 0
    # a user who read the Chinese ML post gets the other Chinese ML post (a new item with no
    # interactions), not the Chinese gardening post
    hist = sp.csr_matrix(([1.0], ([0], [1])), shape=(1, 6))
    items, _ = model.recommend(-1, hist, n=2)
    assert inter.item_ids[items[0]] == "p5"
    assert model.score(np.array([-1]), hist)[0, 3] == 0.0


def test_content_transform_equals_sklearn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    inter, side = _content_side()
    model = ContentModel(tag_weight=1.0).fit(inter, side)
    docs = ContentModel.documents(side, 6)
    ref = TfidfVectorizer(analyzer=lambda d: d, sublinear_tf=True).fit_transform(docs)
    assert np.allclose(model.item_matrix_.toarray(), ref.toarray(), atol=1e-9)


def test_content_without_text_scores_zero(tiny, history):
    model = ContentModel().fit(tiny)
    assert np.all(model.score(np.array([0]), history(tiny, ["a"])) == 0)


@pytest.mark.parametrize("cls", [ALSModel, BPRModel])
def test_factor_fold_in_uses_new_history(cls, tiny, history):
    params = {"factors": 4, "iterations": 30, "random_state": 1, "num_threads": 1}
    if cls is ALSModel:
        params.update(regularization=0.1, alpha=5.0)
    model = cls(**params).fit(tiny)
    u2 = tiny.user_index("u6")  # history {a}
    fitted = model.score(np.array([u2]), tiny.matrix[[u2]])[0]
    assert np.allclose(fitted, model.user_factors_[u2] @ model.item_factors_.T)
    # the same user with a changed history is folded in, so the scores change
    changed = model.score(np.array([u2]), history(tiny, ["a", "c", "d"]))[0]
    assert not np.allclose(changed, fitted)
    # unknown users fold in; different histories give different answers
    s_ab = model.score(np.array([-1]), history(tiny, ["a", "b"]))[0]
    s_cd = model.score(np.array([-1]), history(tiny, ["c", "d"]))[0]
    assert not np.allclose(s_ab, s_cd)
    if cls is ALSModel:
        # the ALS fold-in of a user's own training row reproduces that user's fitted vector
        vec = model.user_vectors(np.array([-1]), tiny.matrix[[u2]])[0]
        assert np.allclose(vec @ model.item_factors_.T, fitted, atol=0.05)


def test_als_bm25_weighting_fits(tiny, history):
    model = ALSModel(factors=4, weighting="bm25", iterations=5, num_threads=1).fit(tiny)
    assert model.idf_.shape == (tiny.n_items,)
    assert np.all(np.isfinite(model.score(np.array([-1]), history(tiny, ["a"]))))
    with pytest.raises(ValueError, match="weighting"):
        ALSModel(weighting="tfidf").fit(tiny)


def _fit_any(name, inter, side):
    params = {
        "als": {"factors": 8, "iterations": 5, "num_threads": 1},
        "bpr": {"factors": 8, "iterations": 5, "num_threads": 1},
        "ease": {"reg": 5.0},
        "itemknn": {"k": 5},
        "hybrid": {"members": {"ease": {"reg": 5.0}, "als": {"factors": 8, "iterations": 5}}},
        "content_attention": {"epochs": 3, "dim": 8, "progress": False, "num_threads": 1},
        "sasrec": {"hidden": 16, "layers": 1, "epochs": 2, "max_len": 8, "verbose": False},
        "lightgcn": {"factors": 8, "epochs": 3, "num_threads": 1, "progress": False},
        "social": {"factors": 8, "epochs": 3, "num_threads": 1, "progress": False},
    }.get(name, {})
    return create_model(name, **params).fit(inter, side)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip_gives_identical_scores(name, random_data, tmp_path):
    inter, side = random_data
    model = _fit_any(name, inter, side)
    users = np.array([0, 5, -1, 7])
    hist = inter.matrix[[0, 5, 9, 7]].tolil()
    hist[3, 0] = 1.0  # user 7 has a new event (fold-in for factor models)
    hist = hist.tocsr()
    before = model.score(users, hist)
    model.save(tmp_path / name)
    loaded = model_class(name).load(tmp_path / name)
    assert loaded.get_params() == model.get_params()
    after = loaded.score(users, hist)
    assert before.shape == (4, inter.n_items)
    np.testing.assert_array_equal(before, after)
    assert not list((tmp_path / name).glob("*.pkl"))
    i1, s1 = model.similar_items(3, 5)
    i2, s2 = loaded.similar_items(3, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)
    # recommend never returns history items
    items, _ = loaded.recommend(0, hist[[0]], n=inter.n_items)
    assert not set(items) & set(hist[[0]].indices)


def test_registry_errors():
    with pytest.raises(ValueError, match="known models: .*ease.*itemknn"):
        create_model("nope")
    with pytest.raises(ValueError, match="known models"):
        model_class("")
    with pytest.raises(ValueError, match="accepted: reg"):
        create_model("ease", lam=3)
    assert isinstance(create_model("ease", reg=2.0), EASEModel)
    assert set(MODELS) == {
        "trending", "latest", "itemknn", "als", "bpr", "ease", "content", "content_attention",
        "sasrec", "hybrid", "lightgcn", "social", "admmslim",
    }  # fmt: skip
    assert all(cls.name == name for name, cls in MODELS.items())


def test_bpr_popularity_correction_is_added_to_the_bias_column(tiny):
    params = {"factors": 4, "iterations": 3, "random_state": 3, "num_threads": 1}
    plain = BPRModel(pop_correction=0.0, **params).fit(tiny)
    corrected = BPRModel(pop_correction=1.0, **params).fit(tiny)
    counts = np.bincount(tiny.matrix.indices, minlength=tiny.n_items)
    np.testing.assert_allclose(
        corrected.item_factors_[:, -1] - plain.item_factors_[:, -1], np.log1p(counts), atol=1e-5
    )
    np.testing.assert_array_equal(corrected.user_factors_[:, -1], 1.0)
