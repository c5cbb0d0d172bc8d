"""Models by name: folders, model cards, and the Hugging Face Hub cache (offline, pre-seeded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import tiny_stylegan2

from idinvert_plugins import hub
from idinvert_plugins.hub import ModelLoadError, ModelNotFoundError, load_generator, save_pretrained

REPO = Path(__file__).resolve().parents[1]
SHA_MAIN = "a" * 40
SHA_V01 = "b" * 40


def seed_cache(cache: Path, repo_id: str, snapshots: dict[str, Path], refs: dict[str, str]) -> Path:
    """Lay out a Hugging Face cache by hand: refs/<name> -> sha, snapshots/<sha>/<files>."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    for sha, folder in snapshots.items():
        shutil.copytree(folder, repo_dir / "snapshots" / sha)
    for ref, sha in refs.items():
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(sha)  # exactly 40 hex chars, no newline
    return repo_dir


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hub"
    g_main, g_v01 = tiny_stylegan2(seed=1), tiny_stylegan2(seed=2)
    main_dir = save_pretrained(g_main, tmp_path / "m_main", kind="generator", card={"name": "tiny"})
    v01_dir = save_pretrained(g_v01, tmp_path / "m_v01", kind="generator", dtype=torch.float16)
    seed_cache(cache, "idinvert-test/tiny-sg2", {SHA_MAIN: main_dir, SHA_V01: v01_dir},
               {"main": SHA_MAIN, "v0.1": SHA_V01})
    return cache, g_main, g_v01


@torch.no_grad()
def _same_output(G1, G2) -> float:
    z = G1.sample_z(2, seed=7)
    return float((G1(z) - G2(z)).abs().max())


def test_folder_round_trip(tmp_path):
    G = tiny_stylegan2(seed=3)
    folder = save_pretrained(G, tmp_path / "m", kind="generator")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "stylegan2" and config["kind"] == "generator" and config["format_version"] == 1
    G2 = load_generator(folder)
    assert _same_output(G, G2) == 0.0
    assert G2.resolved.origin == "path" and not G2.training


def test_hub_offline_main_tag_and_sha(offline_cache):
    cache, g_main, g_v01 = offline_cache
    G = load_generator("idinvert-test/tiny-sg2", cache_dir=cache)
    assert _same_output(G, g_main) == 0.0
    assert G.resolved.commit == SHA_MAIN and G.resolved.origin == "hub"
    Gv = load_generator("idinvert-test/tiny-sg2@v0.1", cache_dir=cache)
    assert Gv.resolved.commit == SHA_V01
    assert _same_output(Gv, g_v01) < 2e-2  # stored as float16
    assert _same_output(Gv, g_main) > 1e-2
    Gs = load_generator("idinvert-test/tiny-sg2", revision=SHA_V01, cache_dir=cache)
    assert Gs.resolved.commit == SHA_V01


def test_hub_missing_revision_and_file(offline_cache):
    cache, *_ = offline_cache
    with pytest.raises(ModelNotFoundError, match=r"config.json of 'idinvert-test/tiny-sg2' at revision 'v9'.*"
                                                 r"not in the local Hugging Face cache.*offline mode"):
        load_generator("idinvert-test/tiny-sg2@v9", cache_dir=cache)
    (cache / "models--idinvert-test--tiny-sg2" / "snapshots" / SHA_MAIN / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"model.safetensors of 'idinvert-test/tiny-sg2' at revision 'main'"):
        load_generator("idinvert-test/tiny-sg2", cache_dir=cache)


def test_hub_corrupt_and_mismatched(offline_cache):
    cache, *_ = offline_cache
    snap = cache / "models--idinvert-test--tiny-sg2" / "snapshots"
    weights = snap / SHA_MAIN / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match=r"model.safetensors is corrupt or truncated.*delete-cache"):
        load_generator("idinvert-test/tiny-sg2", cache_dir=cache)
    config_path = snap / SHA_V01 / "config.json"
    config = json.loads(config_path.read_text())
    config["args"]["channels"]["16"] = 8
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"do not match config.json.*shape mismatches: .*\[16, 16, 3, 3\]"):
        load_generator("idinvert-test/tiny-sg2@v0.1", cache_dir=cache)


def test_strict_loading_rejects_extra_and_missing(tmp_path):
    G = tiny_stylegan2()
    sd = dict(G.state_dict())
    sd["extra.weight"] = torch.zeros(1)
    sd.pop(next(iter(G.state_dict())))
    folder = save_pretrained(G, tmp_path / "m", kind="generator", state_dict=sd)
    with pytest.raises(ModelLoadError, match=r"missing tensors: .*unexpected tensors: extra.weight"):
        load_generator(folder)


def test_wrong_kind_unknown_name_and_pickles(tmp_path):
    folder = save_pretrained(tiny_stylegan2(), tmp_path / "m", kind="generator")
    with pytest.raises(ModelLoadError, match="is a generator, not a encoder"):
        hub.load_encoder(folder)
    with pytest.raises(ModelNotFoundError, match=r"unknown model 'no-such-model'.*Named models: "):
        load_generator("no-such-model")
    pt = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, pt)
    with pytest.raises(ModelNotFoundError, match=r"only converted model folders load.*idinvert convert"):
        load_generator(pt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a model folder: it has no config.json"):
        load_generator(tmp_path / "empty")
    config = json.loads((folder / "config.json").read_text())
    config["architecture"] = "stylegan9"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LookupError, match=r"unknown generator 'stylegan9'. Known: stylegan, stylegan2"):
        load_generator(folder)


def test_card_resolves_bundled_then_hub(tmp_path, monkeypatch, offline_cache):
    cache, g_main, g_v01 = offline_cache
    cards, weights = tmp_path / "cards", tmp_path / "weights"
    cards.mkdir()
    save_pretrained(g_main, weights / "local-one", kind="generator")
    (cards / "local-one.md").write_text("---\nname: local-one\nkind: generator\nlocal: local-one\n---\n# x\n")
    (cards / "hub-one.md").write_text("---\nname: hub-one\nkind: generator\nlocal: not-here\n"
                                      "repo_id: idinvert-test/tiny-sg2\nrevision: v0.1\n---\n# y\n")
    (cards / "nowhere.md").write_text("---\nname: nowhere\nkind: generator\nlocal: gone\n---\n")
    monkeypatch.setenv("IDINVERT_MODEL_CARDS", str(cards))
    monkeypatch.setenv("IDINVERT_WEIGHTS", str(weights))
    G = load_generator("local-one")
    assert G.resolved.origin == "bundled" and _same_output(G, g_main) == 0.0
    G = load_generator("hub-one", cache_dir=cache)
    assert G.resolved.origin == "hub" and G.resolved.commit == SHA_V01
    with pytest.raises(ModelNotFoundError, match="has a card but its weights are not bundled"):
        load_generator("nowhere")
    with pytest.raises(ModelNotFoundError, match=r"Named models: hub-one, local-one, nowhere"):
        load_generator("other")


def test_default_encoder_is_found_by_name_or_as_a_sibling_folder(tmp_path, monkeypatch):
    from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder

    G = tiny_stylegan2(seed=4)
    E = IDInvertEncoder(resolution=16, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8, channel_max=16)
    cards, weights, models = tmp_path / "cards", tmp_path / "weights", tmp_path / "models"
    cards.mkdir()
    save_pretrained(E, weights / "gen-encoder", kind="encoder")
    (cards / "gen-encoder.md").write_text("---\nname: gen-encoder\nkind: encoder\nlocal: gen-encoder\n---\n")
    (cards / "other-encoder.md").write_text("---\nname: other-encoder\nkind: encoder\nlocal: gone\n---\n")
    monkeypatch.setenv("IDINVERT_MODEL_CARDS", str(cards))
    monkeypatch.setenv("IDINVERT_WEIGHTS", str(weights))
    save_pretrained(G, models / "g", kind="generator")
    save_pretrained(E, models / "g-encoder-conventional", kind="encoder")

    assert hub.default_encoder("gen") == "gen-encoder"  # a bundled named model
    assert hub.default_encoder("other") is None  # a card without weights here: not usable offline
    assert hub.default_encoder("gen", "conventional") is None
    assert hub.default_encoder(models / "g") is None  # no sibling models/g-encoder
    assert hub.default_encoder(f"{models / 'g'}/", "conventional") == str(models / "g-encoder-conventional")
    assert hub.default_encoder(None) is None
    assert hub.encoder_name("org/gen") == "org/gen-encoder"
    with pytest.raises(ValueError, match="unknown encoder objective 'pixel'"):
        hub.encoder_name("gen", "pixel")


def test_hf_home_and_offline_env_in_a_fresh_process(tmp_path, offline_cache):
    """The env-var path: HF_HOME + HF_HUB_OFFLINE=1 set before huggingface_hub is imported."""
    cache, *_ = offline_cache
    home = tmp_path / "hf_home"
    shutil.copytree(cache, home / "hub")
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    out = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "info", "idinvert-test/tiny-sg2@v0.1"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["commit"] == SHA_V01 and info["architecture"] == "stylegan2" and info["num_layers"] == 6
    out = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "info", "idinvert-test/absent"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not in the local Hugging Face cache" in out.stderr


@pytest.mark.parametrize("name", ["out/rosinality-sg2-64", "./my-model", "~/models/ffhq", "a/b/c",
                                  "org/ffhq.pkl", "ffhq.safetensors", "runs\\sg2"])
def test_a_local_looking_name_is_never_sent_to_the_hub(name, tmp_path, monkeypatch):
    import time

    def no_hub(*args, **kwargs):
        raise AssertionError(f"{name!r} was sent to the Hub")

    monkeypatch.setattr(hub, "_download", no_hub)
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"no such folder .*the Hub was not asked") as err:
        load_generator(name)
    assert time.perf_counter() - start < 2.0
    assert "named model" in str(err.value)


def test_a_name_whose_first_part_is_a_local_folder_is_a_path_and_hf_hub_forces_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    (tmp_path / "mine").mkdir()
    asked = []
    monkeypatch.setattr(hub, "_download", lambda repo_id, *a, **k: asked.append(repo_id) or (_ for _ in ()).throw(
        ModelNotFoundError("offline")))
    with pytest.raises(ModelNotFoundError, match=r"its first part 'mine/' is a folder here"):
        hub.resolve_model("mine/sg2")
    assert asked == []
    for name, repo in (("hf-hub:out/sg2", "out/sg2"), ("someorg/sg2", "someorg/sg2")):
        with pytest.raises(ModelNotFoundError, match="offline"):
            hub.resolve_model(name)
        assert asked[-1] == repo
