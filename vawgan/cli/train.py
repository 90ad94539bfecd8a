"""`vawgan train`: the three training phases (recipe stages 3–5)."""

from __future__ import annotations

import argparse

from vawgan.cli.common import add_config_arguments, add_device_argument, add_features_argument, config_from_args


def register(subparsers) -> None:
    """Add this area's verbs to the `vawgan` command."""
    p = subparsers.add_parser(
        "train", help="train the VAE, the critic and the adversarial decoder (recipe stages 3-5)",
        description="Train VAW-GAN into a model directory (config.yaml, stats.npz, speakers.txt, checkpoint.pt, "
                    "vae.pt, vawgan.pt, metrics.csv, tensorboard/; with train.members > 1 also members/seed-<k>/, the "
                    "ensemble's other models). Phases run in the order vae -> critic -> "
                    "adversarial; a phase already finished in the directory is skipped, an interrupted one "
                    "continues with --resume. Under torchrun every process trains on its share of each batch "
                    "(DistributedDataParallel; gloo on the CPU, NCCL on GPUs).")
    p.add_argument("--phase", default="all", choices=["vae", "critic", "adversarial", "all"],
                   help="which phase to run (default: all remaining phases)")
    add_features_argument(p)
    p.add_argument("--manifest", default="data/train.tsv", metavar="TSV",
                   help="training utterances (default: data/train.tsv)")
    p.add_argument("--stats", default="dump/stats.npz", metavar="FILE",
                   help="statistics from `vawgan stats` (default: dump/stats.npz)")
    p.add_argument("--model-dir", default="exp/model", metavar="DIR", help="model directory (default: exp/model)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted phase from checkpoint.pt (without a checkpoint: start fresh)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar and no per-epoch lines")
    add_device_argument(p)
    add_config_arguments(p)
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from vawgan.training import PHASES, train_model

    config = config_from_args(args)
    phases = PHASES if args.phase == "all" else (args.phase,)
    try:
        trainer = train_model(config, args.features, args.manifest, args.stats, args.model_dir, phases=phases,
                              resume=args.resume, device=args.device, progress=not args.no_progress)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if trainer.is_main:
        for k, model in enumerate([trainer, *trainer.members]):
            which = f"member {k + 1} ({model.model_dir}) " if trainer.members else ""
            for phase, timing in model.timings.items():
                print(f"{which}{phase}: {timing['steps']} steps in {timing['seconds']:.1f} s "
                      f"({timing['steps_per_second']:.0f} steps/s, {timing['frames_per_second']:,.0f} frames/s)")
    return 0
