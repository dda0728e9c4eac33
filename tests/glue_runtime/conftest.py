"""Fixtures of the Glue 5.0 stand-in (glue_standin.py says what it is made of)."""

from glue_standin import glue5_base, glue5_job, glue_package  # noqa: F401 - pytest fixtures
