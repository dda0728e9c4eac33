"""PySpark jobs, engine-agnostic: the same functions run on local[*] and as an AWS Glue 5.x job."""
