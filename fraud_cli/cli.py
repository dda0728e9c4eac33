"""``python -m fraud_cli <command>``: one CLI, commands discovered from ``fraud_cli.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import time

from fraud_cli import commands as _commands_pkg
from fraud_detection.logs import configure_logging

log = logging.getLogger("fraud_cli")


def _command_modules() -> list:
    mods = []
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            mods.append(importlib.import_module(f"{_commands_pkg.__name__}.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud", description="Credit-card fraud detection: train, serve, retrain.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    started = time.monotonic()
    try:
        rc = int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"{args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one readable line for the user; the traceback goes to the debug log
        log.debug("command failed", exc_info=True)
        print(
            f"{args.command}: FAILED after {time.monotonic() - started:.1f}s: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return 1
    return rc
