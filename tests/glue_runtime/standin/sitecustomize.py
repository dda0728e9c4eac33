"""Stands in for the JVM half of the AWS Glue library, and nothing else.

The Glue 5.0 stand-in (tests/glue_runtime/glue_standin.py) runs the real ``awsglue`` package (PyPI
``awsgluedataplanepython==5.0.0``): ``awsglue.utils.getResolvedOptions`` and the Python code of
``awsglue.job.Job`` run as shipped. Only what needs Glue's Scala classes (present on Glue alone) is
replaced here, at interpreter start, when this folder is on PYTHONPATH:

- ``GlueContext.__init__``: the SQLContext over the SparkSession that spark-submit's configuration made
  (PYSPARK_SUBMIT_ARGS stands in for Glue's launcher), with no Scala GlueContext or GlueLogger;
- ``com.amazonaws.services.glue.util.Job``: ``init`` / ``commit`` / ``isInitialized``, each call appended
  as one JSON line to ``$GLUE_STANDIN_EVENTS`` so a test can see the job was initialised and committed.
"""

from __future__ import annotations

import json
import os


class _JvmJob:
    """The Scala ``Job`` object that ``awsglue.job.Job`` drives through py4j."""

    def __init__(self) -> None:
        self._initialized = False

    def _event(self, **event) -> None:
        path = os.environ.get("GLUE_STANDIN_EVENTS")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps(event) + "\n")

    def init(self, job_name, jspark_session, args) -> None:
        self._initialized = True
        self._event(call="init", job_name=job_name, args=dict(args))

    def isInitialized(self) -> bool:  # noqa: N802 - the Scala name
        return self._initialized

    def commit(self) -> None:
        if not self._initialized:
            raise RuntimeError("Job.commit() before Job.init()")  # what Glue's Job refuses too
        self._event(call="commit")


class _JvmView:
    """The py4j JVM view with Glue's ``Job`` class added; everything else is the real JVM's."""

    def __init__(self, jvm) -> None:
        self._jvm = jvm
        self.Job = _JvmJob()

    def __getattr__(self, name):
        return getattr(self._jvm, name)


def _install() -> None:
    try:
        from awsglue import context
    except ImportError:  # not the stand-in environment
        return
    from pyspark.sql import SparkSession, SQLContext

    def __init__(self, sparkContext=None, **options):  # noqa: N803, N807 - GlueContext's signature
        spark = SparkSession.builder.getOrCreate()
        SQLContext.__init__(self, spark.sparkContext, spark)
        self._jvm = _JvmView(spark.sparkContext._jvm)
        self._glue_scala_context = spark._jsparkSession.sqlContext()
        self.spark_session = spark

    context.GlueContext.__init__ = __init__


_install()
