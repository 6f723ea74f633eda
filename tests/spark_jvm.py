"""The JVM flags of the tests' Spark: the run's session (``conftest.spark``) and the Spark
commands tests start as processes (``agora train --engine spark``)."""

#: Compile with C1 only and collect with one thread: the tests' jobs are many small ones, for
#: which C2's compiler threads cost more CPU than they save on two cores (the Spark tests ran
#: ~35% faster; ``agora train --engine spark`` in tests/cli 26 s -> 22 s). Flags of the JVM,
#: not of Spark: the jobs and their results are the same.
SPARK_TEST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
