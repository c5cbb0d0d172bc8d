"""Shared test fixtures: tiny models, the reference fixtures' location, a clean plugin manager."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "fixtures" / "reference"

torch.set_num_threads(2)


def reference_dir(family: str) -> Path:
    folder = REFERENCE / family
    if not folder.is_dir():
        pytest.skip(f"reference fixtures not found at {folder} (they live in ../shared next to the repo)")
    return folder


@pytest.fixture(autouse=True)
def _fresh_plugins(monkeypatch):
    """Every test starts with the default plugin discovery (hooks/ of the repo, no env overrides)."""
    from idinvert_plugins import plugins

    monkeypatch.delenv("IDINVERT_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("IDINVERT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("IDINVERT_STRICT_PLUGINS", raising=False)
    plugins.configure(None)
    yield
    plugins.configure(None)


@pytest.fixture(autouse=True)
def _user_home(tmp_path_factory, monkeypatch):
    """Learned directions go to a fresh $IDINVERT_HOME, never the user's own (~/.local/share/idinvert)."""
    monkeypatch.setenv("IDINVERT_HOME", str(tmp_path_factory.mktemp("idinvert-home")))


def tiny_stylegan2(resolution: int = 16, seed: int = 0, **kwargs):
    from idinvert_plugins.models.stylegan2 import StyleGAN2Generator

    torch.manual_seed(seed)
    args = dict(resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2,
                channels={str(2**k): 16 for k in range(2, resolution.bit_length())})
    args.update(kwargs)
    G = StyleGAN2Generator(**args).eval()
    with torch.no_grad():
        G.w_avg.copy_(G.compute_w_avg(n=256))
    return G


def tiny_stylegan(resolution: int = 16, seed: int = 0, **kwargs):
    from idinvert_plugins.models.stylegan import StyleGANGenerator

    torch.manual_seed(seed)
    args = dict(resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16,
                repeat_w=False, final_tanh=True)
    args.update(kwargs)
    return StyleGANGenerator(**args).eval()


@pytest.fixture
def sg2():
    return tiny_stylegan2()


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny networks (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    a second thread only adds synchronisation there, and on a busy 2-core machine it made them 10-15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
