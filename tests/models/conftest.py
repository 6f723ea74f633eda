import numpy as np
import pytest
import scipy.sparse as sp

from agora.features.interactions import Interactions, SideData

ITEMS = ["a", "b", "c", "d", "e", "f"]


@pytest.fixture
def tiny() -> Interactions:
    """a and b are always consumed together; c and d too; e alone; f never (cold)."""
    pairs = [
        ("u0", "a"), ("u0", "b"),
        ("u1", "a"), ("u1", "b"),
        ("u2", "a"), ("u2", "b"), ("u2", "c"),
        ("u3", "c"), ("u3", "d"),
        ("u4", "c"), ("u4", "d"),
        ("u5", "e"),
        ("u6", "a"),
        ("u7", "c"),
    ]  # fmt: skip
    users, items = zip(*pairs, strict=True)
    return Interactions.from_triples(list(users), list(items), item_ids=ITEMS)


@pytest.fixture
def random_data() -> tuple[Interactions, SideData]:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    dense = rng.random((n_users, n_items)) < 0.2
    rows, cols = np.nonzero(dense)
    users = [f"u{r}" for r in rows]
    items = [f"i{c}" for c in cols]
    stamps = rng.integers(1_600_000_000, 1_700_000_000, len(rows)).astype(float)
    inter = Interactions.from_triples(
        users, items, timestamps=stamps, item_ids=[f"i{c}" for c in range(n_items)]
    )
    words = ["music", "guitar", "python", "code", "garden", "flowers", "推荐", "系统"]
    texts = [" ".join(rng.choice(words, 3)) for _ in range(n_items)]
    tags = [[str(rng.choice(["art", "tech", "life"]))] for _ in range(n_items)]
    created = rng.uniform(1.6e9, 1.7e9, n_items)
    created[:3] = np.nan
    return inter, SideData(texts=texts, tags=tags, created=created)


@pytest.fixture
def history():
    """history(inter, ["a", "b"]) -> a 1-row csr with those items."""

    def make(inter: Interactions, items: list[str]) -> sp.csr_matrix:
        cols = [inter.item_index(i) for i in items]
        data = (np.ones(len(cols), np.float32), ([0] * len(cols), cols))
        return sp.csr_matrix(data, shape=(1, inter.n_items))

    return make
