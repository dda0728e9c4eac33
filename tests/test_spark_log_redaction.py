"""Spark's JVM writes its own log lines to stderr, outside Python's logging and its redaction. A card number
they quote (a CSV header Spark warns about, an exception's message) is redacted by the log4j2 layout the
local session is configured with. The session runs in a child process, so its stderr is read whole."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from spark_jobs.session import JVM_REDACTED

pytestmark = [pytest.mark.spark, pytest.mark.slow]

CARD = "4000323412349873"
GROUPED = "4000 3234 1234 9873"
AMEX = "3782-822463-10005"

SCRIPT = textwrap.dedent(
    f"""
    import sys
    from pathlib import Path
    from fraud_detection.settings import Settings
    from spark_jobs.session import build_local_session

    state = Path(sys.argv[1])
    settings = Settings(spark_master="local[1]", spark_driver_memory="1g", spark_log_level="WARN")
    spark = build_local_session(settings, state / "spark")
    csv = state / "h.csv"
    csv.write_text("{CARD},amt\\n1,2.5\\n")
    # Spark warns that the header does not match the schema, quoting the header
    spark.read.csv(str(csv), header=True, schema="cc_num string, amt double", enforceSchema=True).collect()
    jvm = spark.sparkContext._jvm
    log = jvm.org.apache.logging.log4j.LogManager.getLogger("fraud.test")
    log.warn("card {GROUPED} in a message, date 2019-01-12 20:29:13 kept")
    log.error("failed", jvm.java.lang.IllegalStateException("bad value {AMEX} in a stack trace"))
    spark.stop()
    print("done")
    """
)


def test_jvm_log_lines_carry_no_card_number(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-3000:]
    err = proc.stderr
    assert "CSV header does not conform to the schema" in err, err[-3000:]  # the warning that quotes data
    assert "java.lang.IllegalStateException" in err, err[-3000:]  # the stack trace is written
    assert "2019-01-12 20:29:13 kept" in err  # dates and times stay readable
    assert err.count(JVM_REDACTED) >= 3, err[-3000:]
    for form in (CARD, GROUPED, AMEX, CARD[:8]):
        assert form not in err, form
