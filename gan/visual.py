"""Pictures people look at instead of numbers: image grids with mask overlays, sent to loggers.

Everything goes through torchvision.utils (make_grid, draw_segmentation_masks) so grids look
the same in TensorBoard, Weights & Biases and the PNG files the CSV logger leaves behind.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import draw_segmentation_masks, make_grid, save_image

CRACK_COLOR = (255, 40, 40)
CLASS_LABELS = {0: "background", 1: "crack"}
ERROR_COLORS = {"found": (40, 200, 40), "false crack": CRACK_COLOR, "missed": (40, 110, 255)}


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images (B,3,H,W) to uint8 on CPU."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()


def overlay_masks(
    images: torch.Tensor, masks: torch.Tensor | None, alpha: float = 0.45, color=CRACK_COLOR
) -> torch.Tensor:
    """uint8 (B,3,H,W) images with class-1 pixels of ``masks`` (B,H,W) tinted; None = no tint."""
    images = to_uint8(images) if images.dtype != torch.uint8 else images.cpu()
    if masks is None:
        return images
    masks = masks.detach().cpu()
    return torch.stack(
        [
            draw_segmentation_masks(img, m == 1, alpha=alpha, colors=color)
            for img, m in zip(images, masks)
        ]
    )


def error_overlay(
    image: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor, alpha: float = 0.7
) -> torch.Tensor:
    """uint8 (3,H,W) image with found, falsely found and missed crack pixels in three colours
    (ERROR_COLORS): whether a model reads texture as crack or loses faint cracks shows at a
    glance, which a plain prediction overlay hides."""
    truth, pred = truth.cpu() == 1, pred.cpu() == 1
    masks = torch.stack([truth & pred, ~truth & pred, truth & ~pred])
    return draw_segmentation_masks(
        image.cpu(), masks, alpha=alpha, colors=list(ERROR_COLORS.values())
    )


def grid_rows(rows: list[torch.Tensor], padding: int = 2) -> torch.Tensor:
    """Stack equally sized uint8 batches as rows of one grid (one column per sample)."""
    ncol = rows[0].shape[0]
    return make_grid(torch.cat(rows), nrow=ncol, padding=padding, pad_value=255)


def save_grid(grid: torch.Tensor, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid.float() / 255.0, str(path))
    return path


def grid_masks(
    masks: list[torch.Tensor | None], like: torch.Tensor, padding: int = 2
) -> torch.Tensor:
    """Class-id masks laid out exactly like ``grid_rows`` lays out images (None = empty row), so
    a viewer (wandb) can toggle the masks over the grid; ``like`` is one (B,3,H,W) row."""
    b, _, h, w = like.shape
    rows = [
        torch.zeros(b, h, w, dtype=torch.uint8) if m is None else m.detach().cpu().to(torch.uint8)
        for m in masks
    ]
    stacked = torch.cat(rows).unsqueeze(1)
    return make_grid(stacked, nrow=b, padding=padding, pad_value=0)[0]


def scalar_step(trainer) -> int:
    """The step Lightning logs this moment's ``self.log`` scalars at, in a training or a
    validation step: its count of batches that stepped, which takes in the batch being
    trained only after its scalars are logged. ``global_step`` counts optimizer steps, already
    past the batch by then, so grids logged at it landed one step after their scalars on the
    dashboards' step slider (a GAN grid at 100 beside the losses of the same batch at 99)."""
    return trainer.fit_loop.epoch_loop._batches_that_stepped


def log_image(trainer, tag: str, grid: torch.Tensor, masks: torch.Tensor | None = None) -> None:
    """Send a uint8 (3,H,W) grid to every active logger of ``trainer`` (rank zero only), at
    the step of the scalars logged with it."""
    if trainer is None or not trainer.is_global_zero:
        return
    step = scalar_step(trainer)
    send_image(trainer.loggers, tag, grid, step, masks, trainer.default_root_dir)


def send_image(
    loggers: list,
    tag: str,
    grid: torch.Tensor,
    step: int,
    masks: torch.Tensor | None = None,
    fallback_dir: str | Path = ".",
) -> None:
    """Send a uint8 (3,H,W) grid to ``loggers``; loggers without images get a PNG in their
    log dir (``fallback_dir`` when they have none).

    ``masks`` (H,W class ids aligned with the grid, see ``grid_masks``) go to wandb as an
    interactive mask layer; the other loggers already see them tinted into the grid.
    """
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag, grid, global_step=step)
        elif isinstance(logger, WandbLogger):
            extra = {}
            if masks is not None:
                layer = {"mask_data": masks.numpy(), "class_labels": CLASS_LABELS}
                extra["masks"] = [{"crack": layer}]
            logger.log_image(key=tag, images=[grid.permute(1, 2, 0).numpy()], step=step, **extra)
        else:
            log_dir = getattr(logger, "log_dir", None) or fallback_dir
            save_grid(grid, Path(log_dir) / "images" / f"{tag.replace('/', '_')}_{step:06d}.png")
