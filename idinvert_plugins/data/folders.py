"""PyTorch datasets: a folder on disk (a rendered dataset or any images), or a domain's images rendered on the fly.

Both yield ``(image, index)`` with ``image`` a float32 ``[3, H, W]`` tensor in [-1, 1] (the range the
generators and encoders use; ``uint8 / 127.5 - 1``).

* :class:`ImageFolderDataset` reads a dataset folder (``images/*.png`` + ``attributes.csv`` + ``dataset.json``,
  as ``idinvert data render`` writes), optionally one split of it, or any folder of images.
* :class:`DomainStream` renders a domain's images ``(seed, index)`` as it goes
  (:meth:`Domain.images <idinvert_plugins.domain_spec.Domain.images>`), split across data-loader workers and
  distributed ranks, so training needs no dataset on disk.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from ..domain_spec import Domain

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``uint8 [H, W, 3]`` to float32 ``[3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class ImageFolderDataset(Dataset):
    """Images of a folder, as ``(image [3, H, W] in [-1, 1], position)``.

    With an ``attributes.csv`` (a rendered dataset folder) the images are the rows of the CSV, in its
    order, optionally only those of ``split`` (``"train"``, ``"test"``, or ``"ood"`` for an OOD set), and
    :attr:`attributes` maps every column to a numpy array aligned with the dataset: by the attribute schema in
    ``dataset.json`` (``"attributes"``: continuous float64, binary int64, categorical int64 class indices),
    other columns as integers, numbers or strings (``index`` the image's index in the whole rendered set,
    ``file`` and ``split`` strings). The second item returned
    is the position in this dataset, so ``ds.attributes["smile"][position]`` is the image's label.

    Without a CSV every image file under ``root`` (recursively, sorted by path) is used, and
    :attr:`attributes` is empty. ``resolution`` resizes images that are not already that size.
    """

    def __init__(self, root: str | Path, split: str | None = None, resolution: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"no such folder: {self.root}")
        self.resolution = resolution
        table = self.root / "attributes.csv"
        meta = self.root / "dataset.json"
        self.meta: dict[str, Any] = json.loads(meta.read_text()) if meta.exists() else {}
        self.attributes: dict[str, np.ndarray] = {}
        if table.exists():
            with open(table, newline="") as f:
                rows = list(csv.DictReader(f))
            if split is not None:
                present = sorted({r.get("split", "") for r in rows})
                rows = [r for r in rows if r.get("split") == split]
                if not rows:
                    raise ValueError(f"no images with split={split!r} in {table}; splits present: "
                                     f"{', '.join(present)}")
            self.files = [self.root / r["file"] for r in rows]
            self.attributes = table_arrays(rows, self.meta.get("attributes", ()))
        else:
            if split is not None:
                raise ValueError(f"split={split!r} needs an attributes.csv with a split column, and "
                                 f"{self.root} has none")
            self.files = sorted(p for p in self.root.rglob("*")
                                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.root}")

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as ``uint8 [H, W, 3]`` RGB (resized to ``resolution`` if one was given)."""
        with Image.open(self.files[i]) as img:
            img = img.convert("RGB")
            if self.resolution is not None and img.size != (self.resolution, self.resolution):
                img = img.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)
            return np.array(img, np.uint8)  # a writable copy, as torch.from_numpy wants

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} images")
        i = i % len(self)
        return image_to_tensor(self.load(i)), i


def _column(values: Sequence[str], spec: Mapping[str, object] | None) -> np.ndarray:
    if spec is not None and spec.get("kind") == "categorical":
        classes = [str(c) for c in spec.get("values", ())]
        return np.array([classes.index(v) if v in classes else int(v) for v in values], np.int64)
    if spec is not None and spec.get("kind") == "continuous":
        return np.array([float(v) for v in values], np.float64)
    if spec is not None:  # binary
        return np.array([int(float(v)) for v in values], np.int64)
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values], np.int64 if kind is int else np.float64)
        except ValueError:
            continue
    return np.array(values)


def table_arrays(rows: Sequence[Mapping[str, str]], specs: Sequence[Mapping[str, object]] = ()
                 ) -> dict[str, np.ndarray]:
    """CSV rows (strings) as one array per column present in every row: the columns named in ``specs`` (attribute
    specs as ``dataset.json`` stores them: ``name``, ``kind``, ``values``) by their kind (categorical values,
    names or indices, become class indices), the others as int64, float64 or strings, whichever parses."""
    if not rows:
        return {}
    by_name = {str(s["name"]): s for s in specs}
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {k: _column([r[k] for r in rows], by_name.get(k)) for k in keys}


def _distributed_rank() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class DomainStream(IterableDataset):
    """Images ``start .. stop-1`` of a domain's dataset with ``seed`` (:meth:`Domain.images
    <idinvert_plugins.domain_spec.Domain.images>`), rendered on the fly.

    Yields ``(image [3, H, W] in [-1, 1], index)`` where ``index`` is the image's index in the dataset, or
    ``(image, index, attributes)`` with ``with_attributes=True`` (attributes as numbers: floats, 0/1 ints,
    categorical class indices; the default collate function turns them into tensors).

    ``stop=None`` streams forever (every image is new: the natural choice for GAN training). A finite
    range is visited once per iteration, in order or, with ``shuffle=True``, in a permutation drawn from
    ``(seed, epoch)``; call :meth:`set_epoch` each epoch for a new order.

    Sharding: the indices are dealt round-robin over ``world_size x num_workers`` shards. Each
    distributed rank (``rank`` / ``world_size``, by default taken from ``torch.distributed`` when it is
    initialised) and each ``DataLoader`` worker of that rank (``torch.utils.data.get_worker_info``) takes
    its own shard, so no image is produced twice and none is missed; just wrap it in a
    ``DataLoader(stream, batch_size=..., num_workers=...)`` on every rank. Shards of a finite range differ
    in size by at most one image: give DDP ranks an infinite stream, or a range divisible by the number of
    shards, if they must run the same number of steps.
    """

    def __init__(self, domain: Domain, seed: int = 0, start: int = 0, stop: int | None = None,
                 resolution: int = 64, shuffle: bool = False, rank: int | None = None,
                 world_size: int | None = None, with_attributes: bool = False) -> None:
        super().__init__()
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        if shuffle and stop is None:
            raise ValueError("shuffle=True needs a finite range (stop=...); an infinite stream is already "
                             "an endless sequence of new random images")
        if (rank is None) != (world_size is None):
            raise ValueError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world_size {world_size}")
        self.domain = domain
        self.seed, self.start, self.stop = int(seed), int(start), stop
        self.resolution = resolution
        self.shuffle = shuffle
        self.rank, self.world_size = rank, world_size
        self.with_attributes = with_attributes
        self.epoch = 0

    @classmethod
    def split_range(cls, domain: Domain, n: int, split: str) -> tuple[int, int]:
        """``(start, stop)`` of the ``"train"`` or ``"test"`` part of an ``n``-image dataset of ``domain``."""
        sizes = domain.split_sizes(n)
        if split == "train":
            return 0, sizes["train"]
        if split == "test":
            return sizes["train"], n
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")

    def set_epoch(self, epoch: int) -> None:
        """Choose the shuffled order of the next iteration (all ranks must use the same epoch)."""
        self.epoch = int(epoch)

    def _ranks(self) -> tuple[int, int]:
        return (self.rank, self.world_size) if self.world_size is not None else _distributed_rank()

    def shard(self) -> tuple[int, int]:
        """``(shard id, number of shards)`` of the calling process. Rank ``r`` owns every ``world_size``-th
        index from position ``r``, and its data-loader workers deal that share among themselves."""
        rank, world = self._ranks()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return worker * world + rank, world * workers

    def indices(self) -> Iterator[int]:
        """The dataset indices this process yields, in order."""
        shard, shards = self.shard()
        if self.stop is None:
            i = self.start + shard
            while True:
                yield i
                i += shards
        order = np.arange(self.start, self.stop)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(order)
        yield from (int(i) for i in order[shard::shards])

    def __len__(self) -> int:
        """Images this rank yields per iteration (over all its workers)."""
        if self.stop is None:
            raise TypeError(f"an infinite {type(self).__name__} (stop=None) has no length")
        rank, world = self._ranks()
        return len(range(rank, self.stop - self.start, world))

    def __iter__(self) -> Iterator[tuple]:
        for index in self.indices():
            images, attrs = self.domain.images(self.seed, [index], self.resolution)
            image = image_to_tensor(images[0])
            if self.with_attributes:
                yield image, index, {k: v[0].item() for k, v in attrs.items()}
            else:
                yield image, index

    def __repr__(self) -> str:
        stop = "inf" if self.stop is None else self.stop
        return (f"{type(self).__name__}({self.domain.name!r}, seed={self.seed}, range={self.start}..{stop}, "
                f"resolution={self.resolution}, shuffle={self.shuffle})")
