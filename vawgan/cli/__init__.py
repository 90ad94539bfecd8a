"""The ``vawgan`` command: parses arguments and calls library functions.

Each area of the toolkit registers its own verbs from a module of this package
(``features``, ``train``, ``convert``, ``evaluate``, ``gans``). Registration only touches
argparse; heavy imports (torch, pyworld, librosa) happen inside the handlers,
so ``vawgan --help`` and argument errors are instant.

A :class:`~vawgan.errors.VawganError` raised anywhere becomes one line on
stderr and exit status 2; Ctrl-C exits with 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from vawgan import __version__
from vawgan.errors import VawganError

COMMAND_MODULES = ("features", "train", "convert", "evaluate", "gans")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vawgan",
        description="VAW-GAN speech feature conversion: extract WORLD mel-cepstra, train, convert, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"vawgan {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"vawgan.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Library warnings (resampling, clipping, rescaled output) reach the user as
    # one "warning: ..." line each on stderr.
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, stream=sys.stderr)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except VawganError as exc:
        print(f"vawgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vawgan {args.command}: interrupted", file=sys.stderr)
        return 130
