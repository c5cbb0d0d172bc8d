"""Training images for the trainers: a domain's dataset rendered on demand, an image folder, and the per-step
batches of every rank (a pure function of (seed, step), so resumed runs see exactly the images they would
have seen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .distributed import DistInfo


# -- data ----------------------------------------------------------------------------------------------
class DomainImages:
    """A domain's training set (:meth:`Domain.images <idinvert_plugins.domain_spec.Domain.images>`): the first
    ``n_train`` train-split images of a ``n_total``-image dataset, rendered on demand. ``images(positions)`` ->
    uint8 ``[B, R, R, 3]``. ``domain``: a registered domain or its name (None: the default domain)."""

    def __init__(self, seed: int, resolution: int, n_train: int, n_total: int, domain: Any = None) -> None:
        from ..domains import get_domain

        self.domain = get_domain(domain)
        train = [i for i in range(n_total) if self.domain.split_of(i, n_total) == "train"]
        if n_train > len(train):
            raise ValueError(f"n_train={n_train} but the train split of {n_total} images has only {len(train)}")
        self.indices = train[:n_train]
        self.seed, self.resolution = seed, resolution

    def __len__(self) -> int:
        return len(self.indices)

    def images(self, positions: list[int]) -> np.ndarray:
        images, _ = self.domain.images(self.seed, [self.indices[p] for p in positions], self.resolution)
        return np.asarray(images)


class FolderImages:
    """An image folder as a training set (only its train split when it is a rendered dataset folder with an
    ``attributes.csv`` and a ``split`` column). ``images(positions)`` -> uint8 ``[B, R, R, 3]``."""

    def __init__(self, root: str, resolution: int) -> None:
        from ..data.folders import ImageFolderDataset

        split = "train" if (Path(root) / "attributes.csv").is_file() else None
        self.dataset = ImageFolderDataset(root, split=split, resolution=resolution)

    def __len__(self) -> int:
        return len(self.dataset)

    def images(self, positions: list[int]) -> np.ndarray:
        return np.stack([self.dataset.load(p) for p in positions])


class StepBatches(torch.utils.data.Dataset):
    """Item ``s`` = this rank's share of the real images of training step ``s`` (uint8 ``[B, R, R, C]``).

    The global order is a fresh seeded permutation of the training set per epoch, cut into global batches;
    rank r takes the r-th slice of each. It depends only on (seed, step), so a resumed run sees exactly the
    images it would have seen, whatever the number of DataLoader workers.
    """

    def __init__(self, source: DomainImages | FolderImages, batch: int, info: DistInfo, seed: int) -> None:
        self.source, self.n, self.seed = source, len(source), seed
        self.local = batch // info.world_size
        self.batch, self.rank = batch, info.rank
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.clear()
            self._perms[epoch] = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
        return self._perms[epoch]

    def positions(self, step: int) -> list[int]:
        start = step * self.batch + self.rank * self.local
        return [int(self._perm(p // self.n)[p % self.n]) for p in range(start, start + self.local)]

    def __getitem__(self, step: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.source.images(self.positions(step))))

    def __len__(self) -> int:  # effectively endless
        return 2**62
