import sys

from fraud_cli.cli import main

sys.exit(main())
