"""Loss networks as plugins (hook ``register_loss_networks``): the built-ins ``vgg16-conv43``, ``classifier`` and
``arcface-ir-se50`` load by ``NAME:PATH_OR_HUB_ID`` from local files and from a pre-seeded Hugging Face cache
(offline), every older feature-network spec still works, missing weights name the file and the option, and a
third-party plugin's perceptual and identity networks are used by the pSp-family trainer by name."""

from __future__ import annotations

import os
import pickle
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_stylegan2
from safetensors.torch import save_file

from idinvert_plugins import plugins
from idinvert_plugins.convert.safe_pickle import UnsafeCheckpointError
from idinvert_plugins.hub import save_pretrained
from idinvert_plugins.losses import ClassifierFeatures, VGG16Perceptual, load_feature_network
from idinvert_plugins.losses.identity import ArcFaceIdentity
from idinvert_plugins.losses.networks import MissingWeightsError, load_identity_network, loss_networks
from idinvert_plugins.models.irse import ArcFaceIRSE50

pytestmark = pytest.mark.usefixtures("one_thread")

SHA = "c" * 40
SHA_OLD = "d" * 40


def seed_hub(cache: Path, repo_id: str, files: dict[str, Path], sha: str = SHA, refs: tuple[str, ...] = ("main",)
             ) -> None:
    """A Hugging Face cache laid out by hand: snapshots/<sha>/<file> (symlinks, as the real cache has) and
    refs/<name> -> sha."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "snapshots" / sha).mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (repo / "snapshots" / sha / name).symlink_to(source.resolve())
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(sha)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty offline Hugging Face cache that every spec resolves through (no network)."""
    import huggingface_hub.constants as c

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    return cache


# -- the registry and the listing ---------------------------------------------------------------------------
def test_builtins_are_registered_and_listed(capsys):
    from idinvert_plugins.cli import main

    kinds = {n.name: n.kind for n in loss_networks()}
    assert kinds == {"vgg16-conv43": "perceptual", "classifier": "perceptual", "arcface-ir-se50": "identity"}
    assert [n.name for n in loss_networks("identity")] == ["arcface-ir-se50"]
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out.split("Loss networks")[1]
    assert "arcface-ir-se50" in listing and "identity: ArcFace IR-SE50" in listing
    assert "[weights: model_ir_se50.pth of TreB1eN/InsightFace_Pytorch" in listing
    assert "classifier" in listing and "[no weights file]" in listing and "[losses]" in listing


def test_a_bad_loss_network_is_reported_not_registered(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "bad.py").write_text(textwrap.dedent("""
        import idinvert_plugins
        from idinvert_plugins.losses.networks import LossNetwork

        class Odd(LossNetwork):
            name = "odd"
            kind = "style"

        @idinvert_plugins.hookimpl
        def register_loss_networks(register):
            register(Odd())
    """))
    with pytest.warns(plugins.PluginWarning, match="loss network 'odd' has kind 'style'; known kinds: perceptual"):
        found = plugins.Plugins(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    assert "odd" not in found.names("loss_network") and "arcface-ir-se50" in found.names("loss_network")


# -- perceptual: old specs, NAME:PATH, Hub ids --------------------------------------------------------------
VGG_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
             17: (256, 512), 19: (512, 512), 21: (512, 512)}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """A random VGG16 trunk up to conv4_3 in torchvision's layout, as ``vgg16.safetensors``."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for idx, (c_in, c_out) in VGG_CONVS.items():
        state[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * (2 / (9 * c_in)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(c_out, generator=gen) * 0.1
    path = tmp_path_factory.mktemp("vgg") / "vgg16.safetensors"
    save_file(state, str(path))
    return path


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_older_feature_spec_still_loads(vgg_file):
    by_prefix = load_feature_network(f"vgg16-conv43:{vgg_file}")
    bare_path = load_feature_network(str(vgg_file))
    assert isinstance(by_prefix, VGG16Perceptual) and by_prefix.loss_weight == 5e-5
    assert _same_weights(by_prefix, bare_path)
    assert load_feature_network(f"vgg16-conv43:{vgg_file}", layer="relu3_3").vgg.output_layer == "relu3_3"
    named = load_feature_network("classifier:toyfaces-classifier-64", layer="stage1")
    assert isinstance(named, ClassifierFeatures) and named.layer == "stage1"
    assert named.name == "toyfaces-classifier-64:stage1"
    bare_model = load_feature_network("toyfaces-classifier-64")
    default = load_feature_network("classifier")  # the default domain's bundled classifier, offline
    assert default.name == bare_model.name == "toyfaces-classifier-64:stage2"
    assert _same_weights(default, bare_model)
    assert load_feature_network("none") is None and load_feature_network(None) is None


def test_vgg16_and_classifier_load_from_hub_ids(vgg_file, hub_cache):
    from idinvert_plugins.cards import weights_dir

    seed_hub(hub_cache, "idinvert-test/vgg16", {"vgg16.safetensors": vgg_file})
    from_hub = load_feature_network("vgg16-conv43:idinvert-test/vgg16")
    assert _same_weights(from_hub, load_feature_network(f"vgg16-conv43:{vgg_file}"))
    assert _same_weights(load_feature_network(f"vgg16-conv43:idinvert-test/vgg16@{SHA}"), from_hub)
    bundled = weights_dir() / "toyfaces-classifier-64"
    seed_hub(hub_cache, "idinvert-test/toy-classifier",
             {name: bundled / name for name in ("config.json", "model.safetensors")})
    hub_classifier = load_feature_network("classifier:idinvert-test/toy-classifier")
    assert hub_classifier.name == "idinvert-test/toy-classifier:stage2"
    assert _same_weights(hub_classifier, load_feature_network("classifier:toyfaces-classifier-64"))
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(hub_classifier(images), load_feature_network("classifier")(images), rtol=0,
                                   atol=0)


def test_missing_perceptual_weights_name_the_file_and_the_option(hub_cache, tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'vgg16-conv43' needs VGG16 ImageNet weights .*vgg16-397923af.pth"
                                                  r".*pass --feature-net=vgg16-conv43:PATH"):
        load_feature_network("vgg16-conv43")
    absent = tmp_path / "vgg16.pth"
    with pytest.raises(MissingWeightsError, match=rf"vgg16-conv43 weights file {absent} not found.*"
                                                  r"pass --set feature_net=vgg16-conv43:PATH or --set "
                                                  r"feature_net=vgg16-conv43:ORG/REPO\[@REVISION\]"):
        load_feature_network(f"vgg16-conv43:{absent}", option="--set feature_net")
    with pytest.raises(MissingWeightsError, match=r"none of vgg16.safetensors, model.safetensors, vgg16.pth, "
                                                  r"vgg16-397923af.pth .*of Hub repo 'nobody/vgg16' at revision "
                                                  r"'main' is in the local Hugging Face cache .*offline mode"):
        load_feature_network("vgg16-conv43:nobody/vgg16")
    with pytest.raises(ValueError, match=r"'arcface-ir-se50' is an identity network, not a perceptual one; "
                                         r"--feature-net needs one of: classifier, vgg16-conv43"):
        load_feature_network("arcface-ir-se50:x.pth")


# -- identity: ArcFace IR-SE50 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def arcface(tmp_path_factory) -> tuple[ArcFaceIRSE50, Path]:
    """A randomly initialised ArcFace IR-SE50 (with non-trivial BatchNorm statistics) saved as TreB1eN's
    ``model_ir_se50.pth`` (a plain state dict written by torch.save)."""
    torch.manual_seed(0)
    net = ArcFaceIRSE50().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_arcface_from_pth_safetensors_and_a_bare_path(arcface, tmp_path):
    net, path = arcface
    loaded = load_identity_network(f"arcface-ir-se50:{path}")
    assert isinstance(loaded, ArcFaceIdentity) and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert _same_weights(loaded.net, net)
    assert _same_weights(load_identity_network(str(path)).net, net)  # id_net=PATH means arcface-ir-se50:PATH
    st = tmp_path / "model_ir_se50.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(st))
    assert _same_weights(load_identity_network(f"arcface-ir-se50:{st}").net, net)
    assert _same_weights(load_identity_network(f"arcface-ir-se50:{tmp_path}").net, net)  # a folder holding it
    # pSp's IDLoss: the face crop [35:223, 32:220] of 256 px at 112 px, unit embeddings
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        emb = loaded(x)
        expected = net(F.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112)))
    torch.testing.assert_close(emb, expected, rtol=0, atol=0)
    assert emb.shape == (2, 512) and torch.allclose(emb.norm(dim=1), torch.ones(2))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_arcface_files_are_read_without_running_code(arcface, tmp_path):
    net, _ = arcface
    evil = tmp_path / "model_ir_se50.pth"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_identity_network(f"arcface-ir-se50:{evil}")
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(ValueError, match=r"is not an ArcFace IR-SE50 state dict .*Missing key"):
        load_identity_network(f"arcface-ir-se50:{other}")


def test_arcface_from_a_hub_id(arcface, hub_cache):
    net, path = arcface
    seed_hub(hub_cache, "idinvert-test/arcface", {"model_ir_se50.pth": path}, refs=("main", "v1"))
    loaded = load_identity_network("arcface-ir-se50:idinvert-test/arcface")
    assert _same_weights(loaded.net, net)
    assert _same_weights(load_identity_network("arcface-ir-se50:idinvert-test/arcface@v1").net, net)
    with pytest.raises(MissingWeightsError, match=r"none of model_ir_se50.safetensors, model_ir_se50.pth, "
                                                  r"model.safetensors .*'idinvert-test/arcface' at revision 'v9' .*"
                                                  r"--set id_net=arcface-ir-se50:PATH"):
        load_identity_network("arcface-ir-se50:idinvert-test/arcface@v9")


def test_missing_identity_weights_name_the_file_and_the_option(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'arcface-ir-se50' needs model_ir_se50.pth of "
                                                  r"TreB1eN/InsightFace_Pytorch.*none were given: download them and "
                                                  r"pass --set id_net=arcface-ir-se50:PATH .*or --set l_id=0"):
        load_identity_network("arcface-ir-se50")
    absent = tmp_path / "model_ir_se50.pth"
    with pytest.raises(MissingWeightsError, match=rf"arcface-ir-se50 weights file {absent} not found"):
        load_identity_network(str(absent))
    with pytest.raises(ValueError, match="'classifier' is a perceptual network, not an identity one"):
        load_identity_network("classifier")


# -- a third-party plugin's networks in the trainer ---------------------------------------------------------
THIRD_PARTY = """
import torch
import torch.nn.functional as F
from torch import nn
from safetensors.torch import load_file

import idinvert_plugins
from idinvert_plugins.features import FeatureNetwork
from idinvert_plugins.losses.networks import LossNetwork


class Blur(FeatureNetwork):
    name = "toy-blur"
    loss_weight = 0.5

    def forward(self, images):
        return F.avg_pool2d(images, 2)


class BlurNetwork(LossNetwork):
    name = "toy-blur"
    kind = "perceptual"
    description = "2x2 average pooling (a test plugin)"

    def build(self, path):
        return Blur()


class ToyID(LossNetwork):
    name = "toy-id"
    kind = "identity"
    description = "a 4x4-pooled colour embedding (a test plugin)"
    weights = "toy_id.safetensors (a Linear(48, 8))"
    files = ("toy_id.safetensors",)

    def build(self, path):
        head = nn.Linear(48, 8)
        head.load_state_dict(load_file(str(path)))
        return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), head)


@idinvert_plugins.hookimpl
def register_loss_networks(register):
    register(BlurNetwork())
    register(ToyID())
"""


@pytest.fixture
def third_party(tmp_path) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_losses.py").write_text(THIRD_PARTY)
    plugins.configure([folder])
    gen = torch.Generator().manual_seed(5)
    head = {"weight": torch.randn(8, 48, generator=gen), "bias": torch.randn(8, generator=gen)}
    weights = tmp_path / "weights" / "toy_id.safetensors"
    weights.parent.mkdir()
    save_file(head, str(weights))
    return weights, head


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gen") / "tiny-sg2"
    save_pretrained(tiny_stylegan2(16, seed=0), folder, kind="generator")
    return folder


def test_a_third_party_plugin_s_networks_train_an_encoder_by_name(third_party, generator, hub_cache, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.training.style_encoder import StyleEncoderTrainConfig, StyleEncoderTrainer

    weights, head = third_party
    assert main(["plugins"]) == 0
    listing = capsys.readouterr().out
    assert "toy-id" in listing and "identity: a 4x4-pooled colour embedding" in listing and "toy-blur" in listing
    seed_hub(hub_cache, "someone/toy-id", {"toy_id.safetensors": weights})
    for id_net in (f"toy-id:{weights}", f"toy-id:{weights.parent}", "toy-id:someone/toy-id"):
        cfg = StyleEncoderTrainConfig.preset("tiny", generator=str(generator), objective="psp",
                                             feature_net="toy-blur", l_feat=None, l_id=0.5, id_net=id_net)
        trainer = StyleEncoderTrainer(cfg)
        assert type(trainer.F).__name__ == "Blur" and trainer.l_feat == 0.5
        x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
        y = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
        codes = trainer.E.latent_avg.expand(3, -1, -1)
        with torch.no_grad():
            loss, stats = trainer.losses(x, y, codes)

        def embed(images):
            return F.normalize(F.linear(F.adaptive_avg_pool2d(images, 4).flatten(1), head["weight"], head["bias"]))

        expected_id = float((1 - (embed(x) * embed(y)).sum(1)).mean())
        expected_feat = float((F.avg_pool2d(y, 2) - F.avg_pool2d(x, 2)).square().mean())
        l2 = float((y - x).square().mean())
        assert stats["id"] == pytest.approx(expected_id, rel=1e-5)
        assert stats["feat"] == pytest.approx(expected_feat, rel=1e-5)
        assert float(loss) == pytest.approx(l2 + 0.5 * expected_feat + 0.5 * expected_id, rel=1e-5)
    before = {k: v.clone() for k, v in trainer.E.state_dict().items()}
    step = trainer.train_step(x)
    assert {"id", "feat", "l2", "loss_E"} <= set(step)
    assert any(not torch.equal(before[k], v) for k, v in trainer.E.state_dict().items())
    cfg = StyleEncoderTrainConfig.preset("tiny", generator=str(generator), objective="psp", feature_net=None,
                                         l_id=0.5, id_net="toy-id")
    with pytest.raises(MissingWeightsError, match=r"'toy-id' needs toy_id.safetensors \(a Linear\(48, 8\)\).*pass "
                                                  r"--set id_net=toy-id:PATH or --set id_net=toy-id:ORG/REPO"):
        StyleEncoderTrainer(cfg)


def test_a_pipeline_takes_registered_perceptual_networks(third_party, generator, vgg_file, hub_cache):
    from idinvert_plugins.pipeline import Pipeline, PipelineError

    assert type(Pipeline.from_pretrained(generator, feature_net="toy-blur").feature_net).__name__ == "Blur"
    seed_hub(hub_cache, "idinvert-test/vgg16", {"vgg16.safetensors": vgg_file})
    from_hub = Pipeline.from_pretrained(generator, feature_net="vgg16-conv43:idinvert-test/vgg16").feature_net
    assert _same_weights(from_hub, load_feature_network(f"vgg16-conv43:{vgg_file}"))
    with pytest.raises(PipelineError, match=r"'vgg16-conv43' needs VGG16 ImageNet weights"):
        Pipeline.from_pretrained(generator, feature_net="vgg16-conv43").feature_net  # noqa: B018
    with pytest.raises(PipelineError, match=r"'toy-id' is an identity network, not a perceptual one"):
        Pipeline.from_pretrained(generator, feature_net="toy-id:x")
