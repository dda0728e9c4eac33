"""Retraining trigger: S3 ``landing/`` events (Lambda on AWS, the ``watch`` command locally) -> checked,
archived or quarantined files -> one training run (Glue job or local launcher)."""
