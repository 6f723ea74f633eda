"""The quality classifier on real posts: labels, separation of spam, artefacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from moderation_support import Sample, as_post
from sklearn.metrics import roc_auc_score

from agora.ingest.stackexchange import load_stackexchange
from agora.moderation.classifier import (
    QualityClassifier,
    label_from_attributes,
    load_latest,
    scores_at,
)

REPO = Path(__file__).resolve().parents[2]


def test_labels_follow_the_documented_rule_on_the_bundled_dump() -> None:
    items = load_stackexchange(REPO / "data" / "cardano-se").dataset.items
    by_label: dict[int | None, list[dict]] = {0: [], 1: [], None: []}
    for item in items:
        by_label[label_from_attributes(item.attributes)].append(item.attributes)
    assert all(a["score"] < 0 or a["closed"] for a in by_label[1])
    assert all(a["score"] >= 0 and not a["closed"] for a in by_label[0])
    assert all(a["score"] >= 1 or a.get("accepted") for a in by_label[0])
    left_out = by_label[None]
    assert all(a["score"] == 0 or a.get("duplicate_of") for a in left_out)
    # the bundled dump has both classes, the low-quality one rare
    assert 30 <= len(by_label[1]) <= 100 and len(by_label[0]) > 1500
    assert label_from_attributes({"score": 3, "closed": True, "duplicate_of": ["7"]}) is None
    assert label_from_attributes({}) is None


def test_classifier_separates_obvious_spam_from_real_posts(
    sample: Sample, trained_root: Path
) -> None:
    loaded = load_latest(trained_root)
    assert loaded is not None
    held_ok = [as_post(i) for i in sample.ok[120:160]]
    held_spam = [as_post(i) for i in sample.spam[16:]]  # 4 English, 4 Chinese, never seen
    prob = loaded.model.predict_proba(held_ok + held_spam)
    y = np.array([0] * len(held_ok) + [1] * len(held_spam))
    assert roc_auc_score(y, prob) >= 0.95
    at = scores_at(y, prob, loaded.threshold)
    assert at["recall"] >= 0.75 and at["precision"] >= 0.75, at
    assert 0.0 < loaded.threshold < 1.0


def test_saved_classifier_predicts_what_it_predicted_before_saving(
    sample: Sample, tmp_path: Path
) -> None:
    posts = [as_post(i) for i in sample.ok[:40] + sample.spam[:10]]
    model = QualityClassifier(C=2.0).fit(posts, [0] * 40 + [1] * 10)
    path = model.save(tmp_path, labels={"low_quality": 10, "ok": 40})
    loaded = load_latest(tmp_path)
    assert loaded is not None and loaded.version == path.name
    assert loaded.model.get_params() == model.get_params()
    new = [as_post(i) for i in sample.ok[40:50] + sample.spam[10:14]]
    np.testing.assert_allclose(loaded.model.predict_proba(new), model.predict_proba(new))
    assert loaded.meta["labels"] == {"low_quality": 10, "ok": 40}


def test_fit_refuses_a_class_with_too_few_examples(sample: Sample) -> None:
    posts = [as_post(i) for i in sample.ok[:20] + sample.spam[:2]]
    with pytest.raises(ValueError, match="at least 5 examples of each class; got 2 low-quality"):
        QualityClassifier().fit(posts, [0] * 20 + [1] * 2)
