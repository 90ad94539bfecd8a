"""Argument helpers shared by the verbs of every area."""

from __future__ import annotations

import argparse

from vawgan.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and repeatable ``--set section.key=value`` overrides."""
    parser.add_argument("--config", help="YAML config file (defaults are used for what it leaves out)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one config value, e.g. --set train.vae_epochs=2 (repeatable)")


def config_from_args(args: argparse.Namespace, config_cls: type = Config):
    """Load the config named by ``--config`` with the ``--set`` overrides applied.

    ``config_cls`` is the configuration type to build (see :func:`vawgan.config.load_config`).
    """
    import yaml

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            from vawgan.errors import VawganError

            raise VawganError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value)
    return load_config(args.config, overrides, config_cls)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, choices=None, metavar="auto|cpu|cuda",
                        help="where to run (default: the config's train.device, itself 'auto')")


def add_features_argument(parser: argparse.ArgumentParser, purpose: str = "") -> None:
    """``--features DIR``: the feature folder written by ``vawgan extract`` (recipe stage 1)."""
    suffix = f", {purpose}" if purpose else ""
    parser.add_argument("--features", default="dump/features", metavar="DIR",
                        help=f"feature folder from `vawgan extract`{suffix} (default: dump/features)")
