"""Influence: centrality of the user graph, seeds of spread, reach and share cascades."""
