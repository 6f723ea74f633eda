"""The ``--engine local|spark`` and ``--spark-master`` options of the analytics commands.

``local`` (the default) runs an analytic in this process over SQL; ``spark`` runs its heavy
pass as a Spark job reading the store over JDBC (:mod:`agora.db.spark`), with the same output.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from agora.cli.shell import fail
from agora.db.spark.session import DEFAULT_MASTER, SparkUnavailable, spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ENGINES = ("local", "spark")

EngineOption = Annotated[
    str, typer.Option("--engine", help="local (this process) or spark (a Spark job).")
]
SparkMasterOption = Annotated[
    str, typer.Option("--spark-master", help="With --engine spark: local[N] or spark://host:port.")
]


def check_engine(engine: str) -> bool:
    """Whether ``engine`` is spark (exits 2 naming the choices when it is neither)."""
    if engine not in ENGINES:
        raise fail(f"--engine is local or spark, not {engine!r}")
    return engine == "spark"


@contextmanager
def spark_job(master: str, app_name: str) -> Iterator[SparkSession]:
    """A Spark session for one command; exits 2 with what to install when Spark cannot run."""
    try:
        with spark_session(master, app_name) as spark:
            yield spark
    except SparkUnavailable as exc:
        raise fail(str(exc)) from exc


__all__ = ["DEFAULT_MASTER", "EngineOption", "SparkMasterOption", "check_engine", "spark_job"]
