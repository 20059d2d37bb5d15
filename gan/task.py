"""Task model: crack segmentation, trained on synthetic, randomized, adapted or real labels.

Whatever the training source, the model is always judged on real DeepCrack test images, so
the metrics here (crack IoU, mIoU, F1 and F1 with a 2-pixel tolerance) are the product's numbers.
Tolerance F1 exists because hand-drawn crack masks are 1-3 px wide and routinely off by a
pixel: plain pixel F1 punishes a prediction one pixel to the side as if it were absent.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    BinaryF1Score,
    BinaryJaccardIndex,
    BinaryPrecision,
    BinaryRecall,
    MulticlassJaccardIndex,
)

from gan.augment import PairedAugment
from gan.checkpoint import plain
from gan.data import checked_rate, in_range
from gan.networks import ChannelsLastInput, UNet, fold_batchnorm
from gan.task_data import forward_by_size
from gan.visual import grid_rows, log_image, overlay_masks
from synth.distributions import ConfigError, checked_count
from synth.io import IGNORE_INDEX, DataError

TORCHVISION_NETS = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# --------------------------------------------------------------------------- networks


class TorchvisionSegNet(nn.Module):
    """A torchvision segmentation model behind the UNet interface: [-1,1] in, logits out.

    Built with ``weights=None`` and ``weights_backbone=None`` so nothing is ever downloaded;
    ImageNet weights come only from a local file (``weights_path``).
    """

    def __init__(self, name: str, num_classes: int = 2, weights_path: str | None = None) -> None:
        super().__init__()
        from torchvision.models import segmentation as seg

        builder = getattr(seg, name)
        self.model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights_path:
            load_local_weights(self.model, weights_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.model(x)["out"]


def load_local_weights(model: nn.Module, path: str | Path) -> int:
    """Load matching tensors from a local state dict; returns how many were loaded.

    Accepts a Lightning checkpoint, a full segmentation state dict, or an ImageNet MobileNet
    classifier (``features.*`` keys map onto the segmentation ``backbone.*``). Tensors whose
    shape differs (e.g. a head with another class count) are skipped, not fatal.
    """
    from lightning.pytorch.utilities import rank_zero_info

    from gan.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    state = load_checkpoint(path)
    state = state.get("state_dict", state)
    own = model.state_dict()
    usable = {}
    for key, value in state.items():
        # this project's checkpoints name the network ``net.`` (a torchvision one ``net.model.``)
        names = [key, key.removeprefix("net."), key.removeprefix("net.model.")]
        if key.startswith("features."):
            names.append(key.replace("features.", "backbone.", 1))
        name = next((n for n in names if n in own and own[n].shape == value.shape), None)
        if name is not None:
            usable[name] = value
    if not usable:
        raise DataError(f"{path}: no tensor matches the model ({len(state)} keys in file)")
    model.load_state_dict(usable, strict=False)
    rank_zero_info(
        f"task.net.weights_path: {len(usable)} of the model's {len(own)} tensors from {path}"
    )
    return len(usable)


def check_batch_fits_net(name: str, batch_size: int) -> None:
    """DeepLabv3's image pooling is a BatchNorm over one value per channel: a batch of one
    image failed in training with torch's 'Expected more than 1 value per channel'."""
    if name.startswith("deeplabv3") and batch_size == 1:
        raise ConfigError(
            f"task_data.batch_size=1: {name} needs batches of 2 or more in training "
            "(its pooled BatchNorm sees one value per channel); or task.net.name=unet"
        )


def build_net(
    name: str = "unet",
    num_classes: int = 2,
    base: int = 16,
    depth: int = 4,
    weights_path: str | None = None,
) -> nn.Module:
    """The segmentation network named in config (``task.net.name``)."""
    if name == "unet":
        net = UNet(3, num_classes, base, depth)
        if weights_path:
            load_local_weights(net, weights_path)
        return net
    if name in TORCHVISION_NETS:
        return TorchvisionSegNet(name, num_classes, weights_path)
    raise ConfigError(f"task.net.name={name!r}: expected unet or one of {TORCHVISION_NETS}")


# --------------------------------------------------------------------------- losses


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """1 - Dice of the crack probability over the whole batch (ignored pixels left out).

    Batch-level Dice counters the 96:4 background imbalance that plain CE gives in to.
    """
    valid = (target != ignore_index).float()
    prob = logits.softmax(1)[:, 1] * valid
    true = (target == 1).float()
    inter = (prob * true).sum()
    return 1 - (2 * inter + 1) / (prob.sum() + true.sum() + 1)


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    dice_weight: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross-entropy (optionally class-weighted, label-smoothed) plus ``dice_weight`` x Dice."""
    if not (target != ignore_index).any():  # CE of zero pixels is NaN; contribute nothing
        return logits.sum() * 0
    loss = F.cross_entropy(
        logits,
        target,
        weight=class_weights,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    if dice_weight > 0:
        loss = loss + dice_weight * soft_dice_loss(logits, target, ignore_index)
    return loss


# --------------------------------------------------------------------------- metrics


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-image crack (tp, fp, fn) as a (B, 3) long tensor; ``pred`` is a 0/1 label map."""
    valid = target != ignore_index
    p, t = (pred == 1) & valid, (target == 1) & valid
    tp = (p & t).flatten(1).sum(1)
    fp = (p & ~t).flatten(1).sum(1)
    fn = (~p & t).flatten(1).sum(1)
    return torch.stack([tp, fp, fn], 1)


#: The shape of the tolerance's neighbourhood, as scores record it: a disc (every pixel at
#: most ``tolerance`` px away, Euclidean). Until session 49 it was the square window, which
#: counted a pixel 2.8 px away diagonally as within 2: the main job's five models read 0.010
#: to 0.013 tolerance F1 higher on the DeepCrack test set with it (0.04 a weakly trained one).
TOLERANCE_SHAPE = "disc"


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary (B,H,W) mask grown to every pixel within ``radius`` px (a disc: a convolution
    counting the mask's pixels there, exact for sums this small, no scipy needed)."""
    if radius <= 0:
        return mask
    offsets = torch.arange(-radius, radius + 1, device=mask.device)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).float()
    grown = F.conv2d(mask[:, None].float(), disc[None, None], padding=radius)
    return grown[:, 0] > 0.5


def tolerance_counts(
    pred: torch.Tensor, target: torch.Tensor, tolerance: int = 2, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Per-image (pred_hit, pred_total, true_hit, true_total) as a (B, 4) long tensor.

    pred_hit: predicted crack pixels within ``tolerance`` px (Euclidean) of a true crack pixel;
    true_hit: true crack pixels within ``tolerance`` px of a predicted one.
    """
    valid = target != ignore_index
    p, t = (pred == 1) & valid, (target == 1) & valid
    pred_hit = (p & dilate(t, tolerance)).flatten(1).sum(1)
    true_hit = (t & dilate(p, tolerance)).flatten(1).sum(1)
    return torch.stack([pred_hit, p.flatten(1).sum(1), true_hit, t.flatten(1).sum(1)], 1)


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """Pixel F1; an image with no crack that gets no prediction scores 1."""
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


def iou_from_counts(tp: float, fp: float, fn: float) -> float:
    denom = tp + fp + fn
    return 1.0 if denom == 0 else tp / denom


def tolerance_f1_from_counts(
    pred_hit: float, pred_total: float, true_hit: float, true_total: float
) -> float:
    """F1 of tolerance precision and recall; nothing predicted and nothing true scores 1."""
    if pred_total == 0 and true_total == 0:
        return 1.0
    precision = pred_hit / pred_total if pred_total else 0.0
    recall = true_hit / true_total if true_total else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


class ToleranceF1(Metric):
    """Crack F1 with a pixel tolerance, accumulated as sums so DDP reduces it exactly."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, tolerance: int = 2, ignore_index: int = IGNORE_INDEX, **kwargs) -> None:
        super().__init__(**kwargs)
        self.tolerance = tolerance
        self.ignore_index = ignore_index
        for name in ("pred_hit", "pred_total", "true_hit", "true_total"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        preds: torch.Tensor,
        target: torch.Tensor,
        tol_counts: torch.Tensor | None = None,
    ) -> None:
        """``preds``: (B,H,W) 0/1 labels or crack probabilities (thresholded at 0.5).

        ``tol_counts``: the batch's per-image ``tolerance_counts`` where the caller has them
        already (gan.evaluate writes them per image), so the dilations run once a batch, not
        twice. A MetricCollection passes the keyword to this metric alone."""
        counts = tol_counts
        if counts is None:
            if preds.is_floating_point():
                preds = (preds > 0.5).long()
            counts = tolerance_counts(preds, target, self.tolerance, self.ignore_index)
        counts = counts.sum(0)
        self.pred_hit += counts[0]
        self.pred_total += counts[1]
        self.true_hit += counts[2]
        self.true_total += counts[3]

    def compute(self) -> torch.Tensor:
        counts = [
            float(s) for s in (self.pred_hit, self.pred_total, self.true_hit, self.true_total)
        ]
        return torch.tensor(tolerance_f1_from_counts(*counts))


def build_metrics(
    tolerance: int = 2, prefix: str = "", validate_args: bool = False
) -> MetricCollection:
    """The product's metric set; every metric takes (B,H,W) 0/1 predictions and class-id masks.
    F1, crack IoU, precision and recall of a set with no crack, true or predicted, are 1, as
    each image's scores and tolerance F1 are (f1_from_counts): nothing to find and nothing
    drawn is no error (precision and recall said 0 beside an F1 of 1). Precision is 1 too where
    a model draws nothing on a set with cracks: its recall of 0 says how F1 was lost.

    torchmetrics' input checks (``validate_args``) are off by default: they run
    ``torch.unique`` over every pixel of every batch: a quarter of the metrics' time
    (13.3 against 17.9 ms a 384x544 photo, tools/bench_task.py), 7 % of scoring the 237 test
    photos. The inputs are checked where they are made: masks are mapped to class ids and
    refused with other values when read (synth.io.read_mask) and resized nearest-neighbour;
    predictions are an argmax or a threshold."""
    common = {"ignore_index": IGNORE_INDEX, "validate_args": validate_args}
    return MetricCollection(
        {
            "crack_iou": BinaryJaccardIndex(zero_division=1, **common),
            "miou": MulticlassJaccardIndex(num_classes=2, average="macro", **common),
            "f1": BinaryF1Score(zero_division=1, **common),
            # Which way F1 is lost: synthetic-trained models mostly lose precision (false
            # cracks on real textures), the oracle recall.
            "precision": BinaryPrecision(zero_division=1, **common),
            "recall": BinaryRecall(zero_division=1, **common),
            "tol_f1": ToleranceF1(tolerance=tolerance),
        },
        prefix=prefix,
    )


# --------------------------------------------------------------------------- the module


def check_loss_settings(
    weight_decay: float,
    warmup_steps: int,
    class_weights: list[float] | None,
    dice_weight: float,
    label_smoothing: float,
    mixup_alpha: float,
    mixup_prob: float,
    tolerance: int,
    num_classes: int,
) -> None:
    """The task model's settings in one line each, before training: torch refused some with a
    traceback (label smoothing 1.5, one class weight), and took others as something else (a
    negative smoothing or Dice weight as 0, a mixup probability of 2 as 1, a tolerance of -1
    as none), and 3 classes scored a crack F1 of 0 (the metrics read class 1 against the rest)."""
    if num_classes != 2:
        raise ConfigError(
            f"task.net.num_classes={num_classes!r}: the crack task has 2 classes "
            "(background, crack), as the masks and metrics do"
        )
    in_range(weight_decay, "task.weight_decay", 0, math.inf)
    in_range(dice_weight, "task.dice_weight", 0, math.inf)
    in_range(label_smoothing, "task.label_smoothing", 0, 1, high_open=True)
    in_range(mixup_alpha, "task.mixup_alpha", 0, math.inf)
    in_range(mixup_prob, "task.mixup_prob", 0, 1)
    checked_count(warmup_steps, "task.warmup_steps", 0)
    checked_count(tolerance, "task.tolerance", 0)
    if class_weights is not None:
        if len(class_weights) != num_classes:
            raise ConfigError(
                f"task.class_weights={class_weights}: one weight per class "
                f"(background, crack), e.g. [1.0, 5.0]"
            )
        for weight in class_weights:
            in_range(weight, "task.class_weights", 0, math.inf)


class CrackSegmenter(pl.LightningModule):
    """Binary crack segmentation (classes 0 background, 1 crack, 255 ignore).

    Trains on small random crops and predicts whole images: every network here is fully
    convolutional. Each regularizer (mixup, label smoothing, augmentation) is a config switch
    so the sim-to-real comparisons differ in one knob at a time.
    """

    #: What each nested option dict is passed to, so its keyword defaults are known too: an
    #: option added there later (augment.drop) keeps earlier runs' records valid at its default.
    OPTION_CLASSES: ClassVar[dict[str, object]] = {"net": build_net, "augment": PairedAugment}

    def __init__(
        self,
        net: Mapping | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        warmup_steps: int = 50,
        class_weights: list[float] | None = None,
        dice_weight: float = 1.0,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        mixup_prob: float = 1.0,
        augment: Mapping | None = None,
        tolerance: int = 2,
        num_log_images: int = 4,
        channels_last: bool = True,
        ema_decay: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"task.ema_decay={ema_decay}: expected 0 (off) <= decay < 1")
        checked_rate(lr, "task.lr")
        net, augment = plain(net) or {}, plain(augment) or {"preset": "none"}
        class_weights = list(class_weights) if class_weights is not None else None
        check_loss_settings(
            weight_decay, warmup_steps, class_weights, dice_weight, label_smoothing,
            mixup_alpha, mixup_prob, tolerance, net.get("num_classes", 2),
        )  # fmt: skip
        self.save_hyperparameters()  # records the plain values assigned just above
        self.net = build_net(**net)
        self.augment = PairedAugment(**augment)
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)
        self.val_metrics = build_metrics(tolerance, "val/")
        self.test_metrics = build_metrics(tolerance, "test/")

    def setup(self, stage: str) -> None:
        """NHWC layout: the U-Net's training step is ~1.3x faster on CPU (oneDNN), and NHWC is
        the tensor-core layout on GPUs. Outputs are the same up to float rounding."""
        if self.hparams.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2, H, W) for images in [-1, 1]."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def inference_net(self) -> nn.Module:
        """A separate eval-only copy of the network for scoring and prediction: BatchNorm
        folded into the convolutions, NHWC: 1.16x faster full-image inference of the U-Net
        on CPU than the module as trained (itself NHWC, 1.7x the NCHW module's speed), with
        the same predictions up to float rounding (tools/bench_task.py)."""
        net = fold_batchnorm(copy.deepcopy(self.net).eval())
        return ChannelsLastInput(net) if self.hparams.channels_last else net

    # ----------------------------------------------------------------- losses

    def compute_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        return segmentation_loss(
            logits, target, self.class_weights, hp.label_smoothing, hp.dice_weight
        )

    def draw_mixup(self, batch_size: int) -> tuple[float, torch.Tensor] | None:
        """(lambda, permutation) for this batch, or None when mixup is off or not drawn."""
        hp = self.hparams
        if hp.mixup_alpha <= 0 or batch_size < 2 or torch.rand(()) >= hp.mixup_prob:
            return None
        lam = float(torch.distributions.Beta(hp.mixup_alpha, hp.mixup_alpha).sample())
        return lam, torch.randperm(batch_size, device=self.device)

    def training_loss(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Loss of one batch; with mixup the images blend and the loss is the lambda-weighted
        loss against both masks (equivalent to soft labels, and keeps ignore pixels exact)."""
        mix = self.draw_mixup(images.shape[0])
        if mix is None:
            return self.compute_loss(self(images), masks)
        lam, perm = mix
        logits = self(lam * images + (1 - lam) * images[perm])
        return lam * self.compute_loss(logits, masks) + (1 - lam) * self.compute_loss(
            logits, masks[perm]
        )

    # ----------------------------------------------------------------- steps

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Augment on the device, after transfer, so kornia runs on the GPU when there is one."""
        if self._trainer is not None and self.trainer.training:
            batch["image"], batch["mask"] = self.augment(batch["image"], batch["mask"])
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.training_loss(batch["image"], batch["mask"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def _eval_step(self, batch: dict, metrics: MetricCollection) -> torch.Tensor:
        pred = forward_by_size(self, batch["image"], batch.get("size")).argmax(1)
        metrics.update(pred, batch["mask"])
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=pred.shape[0])
        return pred

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred = self._eval_step(batch, self.val_metrics)
        if batch_idx == 0 and self.hparams.num_log_images > 0:
            self.log_predictions(batch, pred, "val/predictions")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def log_predictions(self, batch: dict, pred: torch.Tensor, tag: str) -> None:
        """Rows: image, ground truth overlay, prediction overlay (what a person checks first)."""
        n = self.hparams.num_log_images
        images, masks = batch["image"][:n], batch["mask"][:n]
        grid = grid_rows(
            [
                overlay_masks(images, None),
                overlay_masks(images, masks),
                overlay_masks(images, pred[:n]),
            ]
        )
        log_image(self.trainer, tag, grid)

    # ----------------------------------------------------------------- optimization

    def configure_callbacks(self) -> list:
        """``ema_decay`` > 0: the weights validated, checkpointed (``state_dict``) and scored
        are an exponential moving average of the trained ones, Lightning's EMAWeightAveraging
        (BatchNorm statistics averaged too). A run killed mid-way resumes both the trained
        weights and the average from last.ckpt; the final last.ckpt holds the average alone."""
        if not self.hparams.get("ema_decay"):
            return []
        from lightning.pytorch.callbacks import EMAWeightAveraging

        return [EMAWeightAveraging(decay=self.hparams.ema_decay)]

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = self.total_steps()
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total)
        elif hp.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, cosine_with_warmup(hp.warmup_steps, total)
            )
        elif hp.scheduler == "constant":
            return {"optimizer": opt}
        else:
            raise ConfigError(
                f"task.scheduler={hp.scheduler!r}: expected cosine, onecycle or constant"
            )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def total_steps(self) -> int:
        """Optimizer steps of the whole run (the schedule's length)."""
        steps = self.trainer.estimated_stepping_batches if self._trainer is not None else 1000
        if steps in (None, float("inf")) or steps <= 0:
            max_steps = self.trainer.max_steps if self._trainer is not None else None
            raise ConfigError(
                f"trainer.max_steps={max_steps}: set it (or max_epochs) to a number of steps "
                ">= 1 so the LR schedule has a length"
            )
        return int(steps)


def cosine_with_warmup(warmup: int, total: int):
    """LR factor: linear warmup, then cosine decay to 0 at ``total`` steps."""
    import math

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor
