"""The user graph built by Spark equals the single-machine one on the bundled community
(SQLite and PostgreSQL): the same weighted edges, hence the same centrality."""

from __future__ import annotations

import igraph as ig
import pytest
from spark_compare import RELATIVE

from agora.analytics.influence import service as influence
from agora.analytics.influence import spark as ins
from agora.config import DEFAULT_EVENT_WEIGHTS
from agora.db.engine import make_engine, session_factory


def _edges(graph: ig.Graph) -> dict[tuple[str, str], float]:
    return {(graph.vs[e.source]["name"], graph.vs[e.target]["name"]): e["weight"] for e in graph.es}


@pytest.mark.parametrize(
    "weights, include_events",
    [
        (DEFAULT_EVENT_WEIGHTS, True),
        # a negative weight never counts, a zero one adds nothing: only positive contributions sum
        ({**DEFAULT_EVENT_WEIGHTS, "comment": -2.0, "accept": 0.0, "answer": 2.5}, True),
    ],
)
def test_user_graph_equals_the_local_engine(
    spark, spark_community: str, weights: dict[str, float], include_events: bool
) -> None:
    engine = make_engine(spark_community)
    with session_factory(engine)() as session:
        local = influence.build_user_graph(
            session, event_weights=weights, include_events=include_events
        )
    engine.dispose()
    on_spark = ins.build_user_graph(
        spark, spark_community, event_weights=weights, include_events=include_events
    )
    assert on_spark.vs["name"] == local.vs["name"]
    local_edges, spark_edges = _edges(local), _edges(on_spark)
    assert len(local_edges) > 1000 and spark_edges.keys() == local_edges.keys()
    assert spark_edges == pytest.approx(local_edges, rel=RELATIVE)
    top_local, top_spark = influence.centrality(local, 20), influence.centrality(on_spark, 20)
    assert [u.user_id for u in top_spark] == [u.user_id for u in top_local]
    for a, b in zip(top_local, top_spark, strict=True):
        assert (b.pagerank, b.eigenvector, b.in_degree) == pytest.approx(
            (a.pagerank, a.eigenvector, a.in_degree), rel=RELATIVE
        )
