"""Parity of the ``idinvert`` inverter with the official IDInvert ``StyleGANInverter`` (genforce/
idinvert_pytorch), on both reference fixture sets: encoder initialisation, initial losses, the codes after
1, 2, 5 and 10 Adam steps, and the semantic-diffusion (masked) objective. Tolerances are the fixture
README's: inversion trajectories are chaotic, so later steps are compared loosely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from idinvert_plugins.convert.genforce import genforce_encoder_to_ours, genforce_generator_to_ours
from idinvert_plugins.inverters import IDInvert
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.models.stylegan import StyleGANGenerator

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "reference" / "idinvert"
NAMES = ["idinvert_stylegan64", "idinvert_stylegan128_fused"]


class Fixture:
    def __init__(self, name: str) -> None:
        if not FIXTURES.is_dir():
            pytest.skip(f"reference fixtures not found at {FIXTURES} (../shared next to the repo)")
        g = genforce_generator_to_ours(torch.load(FIXTURES / f"{name}_generator.pth", weights_only=True))
        e = genforce_encoder_to_ours(torch.load(FIXTURES / f"{name}_encoder.pth", weights_only=True))
        self.G = StyleGANGenerator(**g.args)
        self.G.load_state_dict(g.state_dict)
        self.E = IDInvertEncoder(**e.args)
        self.E.load_state_dict(e.state_dict)
        # deliberately left in training mode: the inverter must run E (BatchNorm) in eval mode by itself
        self.E.train()
        self.G.eval()
        self.io = dict(np.load(FIXTURES / f"{name}_io.npz"))

    def tensor(self, key: str) -> torch.Tensor:
        return torch.from_numpy(self.io[key])


@pytest.fixture(scope="module", params=NAMES)
def fx(request) -> Fixture:
    return Fixture(request.param)


def assert_trajectory_close(ours: torch.Tensor, ref: torch.Tensor, init: torch.Tensor, step: int) -> None:
    """The README's tolerances: atol 5e-4 after 1-2 steps; after 5-10 steps max |diff| <= 2e-2 and mean
    |diff| <= 10 % of the mean movement from the encoder initialisation."""
    diff = (ours - ref).abs()
    if step <= 2:
        assert diff.max() <= 5e-4, f"after {step} steps: max |diff| {diff.max():.2e}"
    else:
        movement = (ref - init).abs().mean()
        assert diff.max() <= 2e-2, f"after {step} steps: max |diff| {diff.max():.2e}"
        assert diff.mean() <= 0.1 * movement, f"after {step} steps: mean |diff| {diff.mean():.2e} vs {movement:.2e}"


def test_inversion_matches_official_trajectory(fx: Fixture):
    target = fx.tensor("invert_target")[None]
    snapshots: dict[int, torch.Tensor] = {}

    def keep(step, codes, terms):
        snapshots[step] = codes

    # The official settings of the fixture: lr 0.01, pixel weight 1, perceptual off, domain regulariser 2.
    result = IDInvert().invert(fx.G, target, encoder=fx.E, steps=10, lr=0.01, l_pix=1.0, l_feat=0.0, l_dom=2.0,
                               callback=keep)
    assert fx.E.training, "the encoder's training mode must be restored"

    init_ref = fx.tensor("invert_init_code")
    torch.testing.assert_close(result.init_codes, init_ref, atol=1e-4, rtol=0)
    # losses[0] is the loss at the encoder's code: the official initial losses
    assert result.losses[0]["pix"][0] == pytest.approx(float(fx.io["invert_init_loss_pix"]), rel=1e-4)
    assert result.losses[0]["dom"][0] == pytest.approx(float(fx.io["invert_init_loss_reg"]), rel=1e-4)
    assert result.losses[0]["total"][0] == pytest.approx(
        float(fx.io["invert_init_loss_pix"]) + 2 * float(fx.io["invert_init_loss_reg"]), rel=1e-4)
    assert "feat" not in result.losses[0]

    assert sorted(snapshots) == list(range(1, 11))
    torch.testing.assert_close(result.codes, snapshots[10], atol=0, rtol=0)
    for k in (1, 2, 5, 10):
        assert_trajectory_close(snapshots[k], fx.tensor(f"invert_code_after_{k}"), init_ref, k)
    # the optimisation moved the code by far more than the tolerance allows as error
    error = (snapshots[10] - fx.tensor("invert_code_after_10")).abs().mean()
    assert (snapshots[10] - init_ref).abs().mean() > 20 * error


def test_short_run_equals_official_short_run(fx: Fixture):
    """``steps=2`` is a fresh run (the official fixture re-ran from the encoder code for each k)."""
    target = fx.tensor("invert_target")[None]
    result = IDInvert().invert(fx.G, target, encoder=fx.E, steps=2, l_feat=0.0)
    assert len(result.losses) == 2
    assert_trajectory_close(result.codes, fx.tensor("invert_code_after_2"), fx.tensor("invert_init_code"), 2)
    with torch.no_grad():
        torch.testing.assert_close(result.images, fx.G.synthesis(result.codes), atol=1e-6, rtol=0)


def diffusion_inputs(fx: Fixture) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``diffuse`` inputs: stitched images ``target * mask + context * (1 - mask)`` and the mask."""
    cx, cy, crop_x, crop_y = (int(v) for v in fx.io["diffuse_center_xy_crop"])
    res = fx.G.resolution
    mask = torch.zeros(1, 3, res, res)
    top, left = cy - crop_y // 2, cx - crop_x // 2
    mask[:, :, top : top + crop_y, left : left + crop_x] = 1.0
    target = fx.tensor("diffuse_target")[None]
    contexts = torch.from_numpy(fx.io["diffuse_context_uint8"]).permute(0, 3, 1, 2).float() / 255.0 * 2 - 1
    return target * mask + contexts * (1 - mask), mask


def test_diffusion_matches_official(fx: Fixture):
    stitched, mask = diffusion_inputs(fx)
    assert stitched.shape[0] == 2
    # official diffusion: encoder init of the stitched image, no domain regulariser, masked pixel loss
    result = IDInvert().invert(fx.G, stitched, encoder=fx.E, mask=mask, steps=5, lr=0.01, l_feat=0.0, l_dom=0.0)
    ref = fx.tensor("diffuse_code_after_5")
    assert_trajectory_close(result.codes, ref, result.init_codes, 5)
    assert set(result.losses[0]) == {"total", "pix"}
    # the pixel loss is divided by the full image size, not the mask area
    with torch.no_grad():
        rec = fx.G.synthesis(result.init_codes)
        expected = (((stitched - rec) * mask) ** 2).sum(dim=(1, 2, 3)) / stitched[0].numel()
    torch.testing.assert_close(torch.tensor(result.losses[0]["pix"]), expected, rtol=1e-5, atol=0)
