"""The store as Spark's batch jobs (``--engine spark``) read it: a session on ``local[N]`` or a
cluster with the store's JDBC drivers, the store's tables over JDBC or from a Parquet export, and
the jobs' event logs. Part of ``db``: it knows the store and config, nothing above them, so the
models, the evaluation and the analytics may all use it."""
