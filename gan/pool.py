"""CycleGAN image history buffer, extended to carry each fake image's mask along with it."""

from __future__ import annotations

import random

import torch


class ImagePool:
    """Keeps up to ``size`` past fakes; each queried image is returned as-is or, once the pool
    is full, with probability 1/2 swapped for a stored one (Shrivastava et al.), so the
    discriminator also sees older generator outputs and oscillates less. ``size=0`` disables it.
    Masks travel with their image so a pooled fake keeps its carried label. The stored fakes
    go into the training checkpoint (``state_dict``), so a resumed run's discriminator sees
    the history it would have seen without the interruption.
    """

    def __init__(self, size: int = 50) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.masks: list[torch.Tensor | None] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(
        self, images: torch.Tensor, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Detached images (and masks, when given) to show the discriminator."""
        images = images.detach()
        if self.size <= 0:
            return images, masks
        out_i, out_m = [], []
        for k in range(images.shape[0]):
            img = images[k : k + 1].clone()
            msk = masks[k : k + 1].clone() if masks is not None else None
            if len(self.images) < self.size:
                self.images.append(img)
                self.masks.append(msk)
            elif random.random() > 0.5:
                j = random.randrange(self.size)
                self.images[j], img = img, self.images[j].to(images.device)
                self.masks[j], msk = msk, self.masks[j]
                msk = msk.to(images.device) if msk is not None else None
            out_i.append(img)
            out_m.append(msk)
        out_masks = torch.cat(out_m) if masks is not None else None  # type: ignore[arg-type]
        return torch.cat(out_i), out_masks

    def state_dict(self) -> dict:
        """The stored fakes as tensors (a ``weights_only`` checkpoint can hold them)."""
        if not self.images:
            return {"images": None, "masks": None}
        masks = None if self.masks[0] is None else torch.cat(self.masks).cpu()  # type: ignore[arg-type]
        return {"images": torch.cat(self.images).cpu(), "masks": masks}

    def load_state_dict(self, state: dict) -> None:
        images, masks = state.get("images"), state.get("masks")
        self.images = list(images.split(1)) if images is not None else []
        self.masks = list(masks.split(1)) if masks is not None else [None] * len(self.images)
