"""Spark as a batch engine (``--engine spark``): a session on ``local[N]`` or a cluster, and the
store's tables read over JDBC. A kit below the domains: it knows the store, no domain."""
