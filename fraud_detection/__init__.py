"""Credit-card fraud detection: the domain library shared by every deployable.

Nothing here imports pyspark at module top, so the API and the Lambda can import it without Spark.
"""

__version__ = "0.1.0"
