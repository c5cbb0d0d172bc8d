"""A small fully convolutional face-landmark network (CenterNet style), for aligners of rendered domains.

Given an image of any size (a multiple of 8 pixels), it predicts, on a grid of stride 4, a heatmap of face
centres (the mean of the four landmarks) and from each centre the vectors to the four landmarks (eye_left,
eye_right, mouth_left, mouth_right); on a grid of stride 2, a heatmap of each landmark and its sub-pixel
offset. :meth:`LandmarkNet.decode` turns these into faces: centres are the peaks of the first heatmap, each
landmark the peak of its own heatmap nearest to where the centre's vector points (with the offset added), so
several faces in one picture keep their landmarks apart. Its targets, loss and training loop:
:mod:`idinvert_plugins.training.landmarks`; a domain trains it on scenes of its own images (the bundled domain
ships such weights with its aligner).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LandmarkNet(nn.Module):
    """Face centres, landmark vectors, landmark heatmaps and offsets of ``[N, 3, H, W]`` images in [-1, 1]."""

    architecture = "heatmap-landmarks"

    def __init__(self, channels: Sequence[int] = (16, 32, 48, 64), num_landmarks: int = 4,
                 landmark_names: Sequence[str] = ("eye_left", "eye_right", "mouth_left", "mouth_right"),
                 resolution: int = 64) -> None:
        super().__init__()
        c1, c2, c3, c4 = (int(c) for c in channels)
        k = int(num_landmarks)
        self.config: dict[str, Any] = {"channels": [c1, c2, c3, c4], "num_landmarks": k,
                                       "landmark_names": list(landmark_names), "resolution": int(resolution)}
        self.num_landmarks = k
        self.resolution = int(resolution)
        self.e1 = nn.Sequential(_conv(3, c1), _conv(c1, c1))
        self.e2 = nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2))
        self.e3 = nn.Sequential(_conv(c2, c3, 2), _conv(c3, c3))
        self.e4 = nn.Sequential(_conv(c3, c4, 2), _conv(c4, c4), _conv(c4, c4, dilation=2))
        self.d3 = nn.Sequential(_conv(c4 + c3, c3), _conv(c3, c3))
        self.d2 = nn.Sequential(_conv(c3 + c2, c2), _conv(c2, c2))
        self.centre_head = nn.Conv2d(c3, 1 + 2 * k, 1)
        self.point_head = nn.Conv2d(c2, 3 * k, 1)
        with torch.no_grad():  # start the heatmaps near zero (CenterNet's prior)
            self.centre_head.bias[0] = -2.2
            self.point_head.bias[:k] = -2.2

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``centre`` ``[N, 1, H/4, W/4]`` and ``points`` ``[N, K, H/2, W/2]`` heatmap logits; ``vectors``
        ``[N, 2K, H/4, W/4]`` (centre to landmark, in stride-4 cells); ``offsets`` ``[N, 2K, H/2, W/2]``
        (landmark position minus the cell centre, in stride-2 cells)."""
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"LandmarkNet needs sides that are multiples of 8, got {w}x{h}")
        e1 = self.e1(x)
        e2 = self.e2(e1)
        e3 = self.e3(e2)
        e4 = self.e4(e3)
        d3 = self.d3(torch.cat([F.interpolate(e4, scale_factor=2.0, mode="nearest"), e3], 1))
        d2 = self.d2(torch.cat([F.interpolate(d3, scale_factor=2.0, mode="nearest"), e2], 1))
        c = self.centre_head(d3)
        p = self.point_head(d2)
        k = self.num_landmarks
        return {"centre": c[:, :1], "vectors": c[:, 1:], "points": p[:, :k], "offsets": p[:, k:]}

    @torch.no_grad()
    def decode(self, out: dict[str, torch.Tensor], threshold: float = 0.3, max_faces: int = 20,
               snap: float = 0.35) -> list[list[dict[str, Any]]]:
        """Faces per image: ``{"score", "centre" (x, y), "landmarks" [K, 2]}`` in input pixel coordinates
        (``(0, 0)``: the centre of the top-left pixel). ``snap``: how far (a fraction of the face's eye-to-mouth
        size) a landmark heatmap peak may be from the vector's prediction to be used instead of it."""
        k = self.num_landmarks
        centre = torch.sigmoid(out["centre"])
        peaks = centre == F.max_pool2d(centre, 3, 1, 1)
        points = torch.sigmoid(out["points"])
        point_peaks = points == F.max_pool2d(points, 3, 1, 1)
        faces: list[list[dict[str, Any]]] = []
        for n in range(centre.shape[0]):
            found = []
            scores = (centre[n, 0] * peaks[n, 0]).flatten()
            top = torch.topk(scores, min(max_faces, scores.numel()))
            w4 = centre.shape[-1]
            for score, idx in zip(top.values.tolist(), top.indices.tolist()):
                if score < threshold:
                    break
                cy, cx = divmod(idx, w4)
                vec = out["vectors"][n, :, cy, cx].view(k, 2)
                c_px = torch.tensor([4.0 * cx + 1.5, 4.0 * cy + 1.5])
                guess = c_px + 4.0 * vec
                size = float((guess[2:].mean(0) - guess[:2].mean(0)).norm()) + float((guess[1] - guess[0]).norm())
                lms = []
                for j in range(k):
                    lms.append(self._snap(points[n, j], point_peaks[n, j], out["offsets"][n, 2 * j:2 * j + 2],
                                          guess[j], snap * size))
                found.append({"score": score, "centre": c_px.tolist(), "landmarks": torch.stack(lms).tolist()})
            faces.append(found)
        return faces

    @staticmethod
    def _snap(heat: torch.Tensor, peaks: torch.Tensor, offsets: torch.Tensor, guess: torch.Tensor,
              radius: float) -> torch.Tensor:
        """The landmark heatmap's strongest peak within ``radius`` pixels of ``guess`` plus its offset, else the
        guess itself."""
        h2, w2 = heat.shape
        gy, gx = torch.meshgrid(torch.arange(h2, dtype=torch.float32), torch.arange(w2, dtype=torch.float32),
                                indexing="ij")
        px, py = 2.0 * gx + 0.5, 2.0 * gy + 0.5
        near = ((px - guess[0]) ** 2 + (py - guess[1]) ** 2) <= max(radius, 2.0) ** 2
        cand = heat * (peaks & near)
        if float(cand.max()) < 0.05:
            return guess
        idx = int(torch.argmax(cand))
        y, x = divmod(idx, w2)
        return torch.tensor([2.0 * x + 0.5 + 2.0 * float(offsets[0, y, x]),
                             2.0 * y + 0.5 + 2.0 * float(offsets[1, y, x])])


__all__ = ["LandmarkNet"]
