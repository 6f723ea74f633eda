"""Analytics over the store and its text, one sub-package per topic (anomalies, engagement,
influence, results, segments, sentiment, trending); shared here: the tables (``models``), the
background jobs (``jobs``), the differentially private figures (``dp_figures``), the
``--engine`` options (``engine_options``) and what the routers share (``http``)."""
