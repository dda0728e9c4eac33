"""The ``fraud`` command line: above every deployable, shipped in none of them.

It may import the shared library (``fraud_detection``) and every deployable (``spark_jobs``, ``glue``,
``api``, ``retrain_lambda``, ``infra``) and the development tools (``tools``); nothing imports it.
"""
