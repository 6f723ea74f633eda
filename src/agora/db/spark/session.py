"""Start and stop the Spark session Agora's batch jobs run on.

pyspark starts a JVM: without Java (or without pyspark) the engine answers with what to install
instead of a stack trace. The JDBC drivers come from Debian's packages (``make java``), never
from a Maven download at run time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Where Debian's libpostgresql-jdbc-java and libxerial-sqlite-jdbc-java put their drivers.
JDBC_JARS: tuple[Path, ...] = (
    Path("/usr/share/java/postgresql.jar"),
    Path("/usr/share/java/sqlite-jdbc.jar"),
)
DEFAULT_MASTER = "local[2]"


class SparkUnavailable(RuntimeError):
    """pyspark, Java or a JDBC driver is missing; the message says what to install."""


def check_spark() -> None:
    """Raise :class:`SparkUnavailable` unless pyspark, a Java runtime and the drivers are here."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise SparkUnavailable(
            "pyspark is not installed: pip install 'agora[spark]' (or make test)"
        ) from exc
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise SparkUnavailable(
            "Spark needs a Java 17 runtime: apt-get install openjdk-17-jre-headless (or make java)"
        )
    missing = [str(jar) for jar in JDBC_JARS if not jar.exists()]
    if missing:
        raise SparkUnavailable(
            f"the JDBC drivers Spark reads the store with are missing ({', '.join(missing)}): "
            "apt-get install libpostgresql-jdbc-java libxerial-sqlite-jdbc-java (or make java)"
        )


@contextmanager
def spark_session(
    master: str = DEFAULT_MASTER,
    app_name: str = "agora",
    driver_memory: str = "4g",
    shuffle_partitions: int | None = None,
    event_log_dir: str | Path | None = None,
) -> Iterator[SparkSession]:
    """A Spark session for one batch job, stopped when the block ends.

    Times are UTC, the web UI is off (a batch job on a shared host opens no port), and shuffles
    use twice the local cores unless told otherwise (Spark's default of 200 partitions makes
    small jobs slow). With ``event_log_dir`` Spark writes its event log there (uncompressed
    JSON lines, one file per application), which :mod:`agora.db.spark.eventlog` summarises.

    In a process that already runs a Spark session (a notebook, a driver program, a test run)
    the job runs on that session and leaves it running: stopping it would break its owner.
    """
    check_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    scratch = tempfile.mkdtemp(prefix="agora-spark-")
    partitions = shuffle_partitions or 2 * _local_cores(master)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.jars", ",".join(str(jar) for jar in JDBC_JARS))
        .config(map=_event_log_config(event_log_dir))
        .config("spark.driver.memory", driver_memory)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(partitions))
        .config("spark.default.parallelism", str(partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", scratch)
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", f"-Djava.io.tmpdir={scratch}")
    )
    if master.startswith("local"):
        # Python tasks run this interpreter (its packages), not the first python3 on PATH;
        # pyspark reads the variable when the context starts
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    session.sparkContext.setCheckpointDir(str(Path(scratch) / "checkpoints"))
    try:
        yield session
    finally:
        session.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _local_cores(master: str) -> int:
    """The cores a ``local[N]`` master uses (``local[*]``: this machine's); 2 for a cluster."""
    if master.startswith("local"):
        inside = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
        if inside.strip() == "*":
            return os.cpu_count() or 2
        return max(1, int(inside.split(",")[0]))
    return 2


def _event_log_config(directory: str | Path | None) -> dict[str, str]:
    """Spark's event log in ``directory`` (created), one uncompressed file per application
    (Spark 4 otherwise rolls it into parts); no settings without a directory."""
    if directory is None:
        return {}
    Path(directory).mkdir(parents=True, exist_ok=True)
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": Path(directory).resolve().as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
    }
