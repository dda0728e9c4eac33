"""Development-only code (the data generator): used by the CLI, the tests and the benchmarks, shipped
by no deployable."""
