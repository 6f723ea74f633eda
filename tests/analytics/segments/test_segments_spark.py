"""The segments' feature matrix computed by Spark equals the single-machine one on the bundled
community (SQLite and PostgreSQL), so the clustering on the driver finds the same segments."""

from __future__ import annotations

import numpy as np

from agora.analytics.segments import service as segments
from agora.analytics.segments import spark as ss
from agora.db.engine import make_engine, session_factory


def test_feature_matrix_and_segments_equal_the_local_engine(spark, spark_community: str) -> None:
    engine = make_engine(spark_community)
    with session_factory(engine)() as session:
        local = segments.load_features(session)
        on_spark = ss.load_features(spark, spark_community)
        assert on_spark.users == local.users and len(local.users) > 500
        assert on_spark.event_types == local.event_types
        assert on_spark.behaviour_columns == local.behaviour_columns
        assert on_spark.tags == local.tags and len(local.tags) > 50
        assert np.allclose(on_spark.behaviour, local.behaviour, rtol=1e-9, atol=0)
        assert (on_spark.tag_counts != local.tag_counts).nnz == 0
        assert on_spark.tag_counts.shape == local.tag_counts.shape
        for name in ("events", "active_days", "type_shares"):
            assert np.array_equal(getattr(on_spark, name), getattr(local, name)), name
        by_local = segments.segment_users(session, k=4)
        by_spark = segments.segment_users(session, k=4, load=lambda: on_spark)
    engine.dispose()
    assert np.array_equal(by_spark.labels, by_local.labels)
    assert [s.attributes() for s in by_spark.segments] == [
        s.attributes() for s in by_local.segments
    ]
