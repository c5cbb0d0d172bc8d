"""The shipped toy-face models: each bundled generator loads offline by name with its discriminator, its two
encoders and its directions, and reproduces the figures its model cards record."""

from __future__ import annotations

import json

import pytest
import torch

import idinvert_plugins as ip
from idinvert_plugins import metrics
from idinvert_plugins.cards import list_cards
from idinvert_plugins.editors.directions import Direction, find_directions
from idinvert_plugins.hub import load_model
from idinvert_plugins.training.encoder import EncoderTrainConfig, heldout_images

GENERATORS = ("toyfaces-stylegan2-64", "toyfaces-stylegan-64")
SEMANTIC = {"smile", "eyeglasses", "age", "skin_tone", "face_width", "yaw", "hair_length"}


@pytest.fixture(scope="module", params=GENERATORS)
def name(request) -> str:
    return request.param


def test_generator_and_discriminator_load_offline_and_render_faces(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    G = ip.load_generator(name)
    assert G.resolved.origin == "bundled" and G.resolution == 64
    with torch.no_grad():
        images = G.synthesis(G.mapping(G.sample_z(8, seed=0)), noise_mode="const")
    assert images.shape == (8, 3, 64, 64) and (images.abs() <= 1).float().mean() > 0.99  # in range
    assert images.std(dim=0).mean() > 0.1  # eight different faces, not one template
    D = load_model(f"{name}-d", kind="discriminator")
    with torch.no_grad():
        scores = D(images.clamp(-1, 1))
    assert scores.shape[0] == 8 and torch.isfinite(scores).all()


@pytest.mark.parametrize("objective", ["domain-guided", "conventional"])
def test_encoders_reproduce_their_cards_reconstruction_error(name, objective):
    encoder_name = f"{name}-encoder" + ("-conventional" if objective == "conventional" else "")
    card = list_cards().get(encoder_name)
    assert card is not None and card.data["generator"] == name and card.data["objective"] == objective
    G, E = ip.load_generator(name), ip.load_encoder(encoder_name)
    x_uint8, _ = heldout_images(EncoderTrainConfig(generator=name), G.resolution)
    x = torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        rec = G.synthesis(E(x), noise_mode="const")
    mse = float(metrics.mse(rec, x, reduction="mean"))
    assert mse == pytest.approx(card.data["eval_mse"], rel=0.02)


#: The edit vectors a shipped direction may use: each was chosen per direction by its measured cross-talk
#: (benchmarks/crosstalk.py, docs/directions.md); the boundary is kept in every file.
STEERINGS = {"normal": "interfacegan-logistic", "covariance": "interfacegan-logistic-covariance",
             "class-means": "interfacegan-logistic-class-means",
             "conditional": "interfacegan-logistic-conditional",
             "conditional-class-means": "interfacegan-logistic-conditional-class-means",
             "compensated": "interfacegan-logistic-compensated", "optimized": "interfacegan-logistic-optimized"}
CROSSTALK_KEYS = {"clean", "success", "worst", "worst_attribute", "step", "samples", "test_faces"}


def test_directions_cover_every_attribute_and_record_accuracy(name):
    found = find_directions(name)
    summary = json.loads((ip.load_generator(name).resolved.folder / "directions" / "summary.json").read_text())
    rows = summary["directions"]
    assert SEMANTIC <= set(found) and {f"sefa_{i:02d}" for i in range(5)} <= set(found)
    assert {f"ganspace_{i:02d}" for i in range(5)} <= set(found)
    assert {n for n in found if n.startswith(("hair_color-", "hair_style-", "background-"))}
    for attr in SEMANTIC:
        assert rows[attr]["source"] == STEERINGS[rows[attr]["steer"]] and 0.5 < rows[attr]["accuracy"] <= 1
        d = Direction.load(found[attr])
        assert d.normal is not None and d.extra["steer"] == rows[attr]["steer"]  # the boundary is kept
        ct = rows[attr]["crosstalk"]
        assert CROSSTALK_KEYS <= set(ct) and ct["samples"] == "generator" and ct["step"] == 3.0
        assert ct["clean"] == (ct["success"] >= 0.9 and ct["worst"] is not None and ct["worst"] <= 0.5)
        assert ct["test_faces"]["samples"] == "test_faces" and d.extra["crosstalk"] == ct
        assert rows[attr]["n_samples"] == 20000
