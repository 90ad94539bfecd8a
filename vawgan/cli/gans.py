"""`vawgan gan2d`, `vawgan mnist`, `vawgan began`: the secondary GAN models.

Each verb has the actions ``train``, ``sample``, ``evaluate`` and ``plot``
working on one run directory (``--out`` for train, ``--run`` afterwards).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vawgan.cli.common import add_config_arguments, add_device_argument, config_from_args

VERBS = {
    "gan2d": "vanilla or Coulomb GAN on the 5x5 grid of Gaussians (model.kind=coulomb|vanilla)",
    "mnist": "DCGAN or MLP GAN on MNIST, or scikit-learn's digits when MNIST is absent (model.kind=dcgan|mlp)",
    "began": "BEGAN (autoencoder discriminator, k_t control, M_global, collapse detector) on digits",
}


def register(subparsers) -> None:
    """Add this area's verbs to the `vawgan` command."""
    for verb, description in VERBS.items():
        parser = subparsers.add_parser(verb, help=description, description=description)
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        train = actions.add_parser("train", help="train a model into a run directory")
        train.add_argument("--out", required=True, type=Path, help="run directory to create")
        train.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        add_config_arguments(train)
        add_device_argument(train)
        train.set_defaults(handler=_train, verb=verb)

        sample = actions.add_parser("sample", help="write generated samples")
        sample.add_argument("--run", required=True, type=Path, help="run directory made by train")
        sample.add_argument("-n", type=int, default=1000, help="number of samples (default 1000)")
        sample.add_argument("--output", required=True, type=Path,
                            help=".npy array" + (" or .png image grid" if verb != "gan2d" else ""))
        sample.add_argument("--seed", type=int, default=1234, help="noise seed")
        add_device_argument(sample)
        sample.set_defaults(handler=_sample, verb=verb)

        evaluate = actions.add_parser("evaluate", help="score trained runs and print a table")
        evaluate.add_argument("--run", required=True, type=Path, action="append",
                              help="run directory (repeat to compare several)")
        add_device_argument(evaluate)
        evaluate.set_defaults(handler=_evaluate, verb=verb)

        plot = actions.add_parser("plot", help="(re)draw a run's figures")
        plot.add_argument("--run", required=True, type=Path, help="run directory made by train")
        add_device_argument(plot)
        plot.set_defaults(handler=_plot, verb=verb)


def _config_cls(verb: str):
    from vawgan.gans.config import BeganConfig, Grid2DConfig, ImageGanConfig

    return {"gan2d": Grid2DConfig, "mnist": ImageGanConfig, "began": BeganConfig}[verb]


def _module(verb: str):
    if verb == "gan2d":
        from vawgan.gans import grid

        return grid
    from vawgan.gans import images

    return images


def _device(args: argparse.Namespace, default: str = "auto"):
    from vawgan.utils import resolve_device

    return resolve_device(args.device or default)


def _train(args: argparse.Namespace) -> int:
    config = config_from_args(args, _config_cls(args.verb))
    _module(args.verb).train(config, args.out, _device(args, config.train.device), resume=args.resume)
    print(f"report: {args.out / 'report.txt'}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    device = _device(args)
    if args.verb == "gan2d":
        _module(args.verb).sample(args.run, args.n, args.output, device, args.seed)
    else:
        _module(args.verb).sample(args.run, _config_cls(args.verb), args.n, args.output, device, args.seed)
    print(f"wrote {args.n} samples to {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    device = _device(args)
    module = _module(args.verb)
    if args.verb == "gan2d":
        print(f"{'run':40s} {'modes':>7s} {'high-quality':>13s} {'3-6 sigma':>10s} {'farther':>8s}")
        for run in args.run:
            c = module.evaluate(run, device)
            print(f"{str(run):40s} {c.modes:>4d}/{c.n_modes:<2d} {100 * c.high_quality:>12.1f}% "
                  f"{100 * c.near_miss:>9.1f}% {100 * c.far_out:>7.1f}%")
        return 0
    print(f"{'run':40s} {'classes':>7s} {'entropy':>8s} {'confidence':>10s} {'Frechet':>8s} {'diversity':>9s}  collapse")
    floor = None
    for run in args.run:
        scores, floor, collapse = module.evaluate(run, _config_cls(args.verb), device)
        print(f"{str(run):40s} {scores.classes_present:>7d} {scores.class_entropy:>8.3f} "
              f"{scores.mean_confidence:>10.3f} {scores.frechet:>8.2f} {scores.diversity:>9.2f}  "
              f"{'YES: ' + collapse if collapse else 'no'}")
    print(f"{'(real vs real floor)':40s} {floor.classes_present:>7d} {floor.class_entropy:>8.3f} "
          f"{floor.mean_confidence:>10.3f} {floor.frechet:>8.2f} {floor.diversity:>9.2f}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    device = _device(args)
    if args.verb == "gan2d":
        written = _module(args.verb).plot(args.run, device)
    else:
        written = _module(args.verb).plot(args.run, _config_cls(args.verb), device)
    for path in written:
        print(f"wrote {path}")
    return 0
