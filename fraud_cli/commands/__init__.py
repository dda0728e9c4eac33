"""CLI commands: each module here defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.

``fraud_cli.cli`` discovers them, so a new command is a new module and nothing else.
Heavy imports (pyspark, fastapi) belong inside ``run``.
"""
