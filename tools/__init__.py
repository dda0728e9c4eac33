"""Development-only code, shipped by no deployable: the data generator (``tools.generator``) and the local
AWS emulator with its provisioner (``tools.emulator``), used by the CLI, the tests and the benchmarks."""
