"""Perceptual feature networks: the VGG16 trunk (Caffe preprocessing, conv4_3 + ReLU), loading from
torchvision and official-IDInvert layouts with strict checks, and the classifier-feature adapter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import idinvert_plugins as ip
from idinvert_plugins.convert.vgg import load_vgg16
from idinvert_plugins.losses import ClassifierFeatures, FeatureNetwork, VGG16Perceptual, load_feature_network
from idinvert_plugins.models.classifier import AttributeClassifier, head_spec
from idinvert_plugins.models.vgg import VGG16Features

# torchvision vgg16().features: conv layer index -> (in, out); every conv is followed by a ReLU and the blocks
# end with a 2x2 max-pool at indices 4, 9, 16, 23, 30. Written out here independently of the library.
CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
         17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512)}
POOLS = {4, 9, 16, 23, 30}


@pytest.fixture(scope="module")
def vgg_state() -> dict[str, torch.Tensor]:
    """A randomly initialised full VGG16 trunk (13 convs) in torchvision's key layout."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for idx, (c_in, c_out) in CONVS.items():
        state[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen) * (2 / (9 * c_in)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(c_out, generator=gen) * 0.1
    return state


def reference_vgg(state: dict[str, torch.Tensor], images: torch.Tensor, last: int = 22) -> torch.Tensor:
    """The IDInvert perceptual model by hand: [-1, 1] -> [0, 255], RGB -> BGR, minus the Caffe means, then the
    trunk up to index ``last`` (22 = the ReLU after conv4_3)."""
    x = (images + 1) * 255.0 / 2.0
    x = x[:, [2, 1, 0]] - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    for idx in range(last + 1):
        if idx in CONVS:
            x = F.conv2d(x, state[f"features.{idx}.weight"], state[f"features.{idx}.bias"], padding=1)
        elif idx in POOLS:
            x = F.max_pool2d(x, 2, 2)
        else:
            x = F.relu(x)
    return x


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_vgg16_from_torchvision_layout_safetensors(tmp_path, vgg_state, images):
    path = tmp_path / "vgg16.safetensors"
    save_file(vgg_state, str(path))
    vgg = load_vgg16(path)
    assert not vgg.training
    assert sorted(vgg.state_dict()) == sorted(k for k in vgg_state if int(k.split(".")[1]) <= 21)  # conv5 dropped
    with torch.no_grad():
        out = vgg(images)
        ref = reference_vgg(vgg_state, images)
    assert out.shape == (2, 512, 4, 4)
    assert (out >= 0).all() and (out > 0).any()  # after the ReLU
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-3 * ref.abs().max().item())


def test_vgg16_from_official_idinvert_layout(tmp_path, vgg_state, images):
    official = {k.replace("features.", "layer"): v for k, v in vgg_state.items()}  # layer{idx}.weight
    st, pth = tmp_path / "vgg16_idinvert.safetensors", tmp_path / "vgg16.pth"
    save_file(official, str(st))
    torch.save(official, pth)  # the official vgg16.pth is a plain state dict; read with the restricted unpickler
    ref = reference_vgg(vgg_state, images)
    for path in (st, pth):
        with torch.no_grad():
            out = load_vgg16(path)(images)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-3 * ref.abs().max().item())


def test_vgg16_other_output_layer(tmp_path, vgg_state, images):
    # only the convs up to relu3_3 are needed for that layer: a truncated file loads
    partial = {k: v for k, v in vgg_state.items() if int(k.split(".")[1]) <= 14}
    save_file(partial, str(tmp_path / "p.safetensors"))
    net = load_feature_network(f"vgg16-conv43:{tmp_path / 'p.safetensors'}", layer="relu3_3")
    assert net.name == "vgg16-relu3_3"
    with torch.no_grad():
        torch.testing.assert_close(net(images), reference_vgg(vgg_state, images, last=15), rtol=1e-4, atol=1e-2)
    with pytest.raises(ValueError, match=r"missing \['features.17.weight'"):
        load_vgg16(tmp_path / "p.safetensors")  # relu4_3 needs conv4_*


def test_vgg16_loading_is_strict(tmp_path, vgg_state):
    def attempt(state, name):
        path = tmp_path / f"{name}.safetensors"
        save_file(state, str(path))
        return load_vgg16(path)

    missing = {k: v for k, v in vgg_state.items() if k != "features.21.bias"}
    with pytest.raises(ValueError, match=r"missing \['features.21.bias'\]"):
        attempt(missing, "missing")
    with pytest.raises(ValueError, match=r"unexpected keys \['features.3.weight', 'head.weight'\]"):
        attempt({**vgg_state, "head.weight": torch.zeros(1), "features.3.weight": torch.zeros(1)}, "extra")
    wrong = {**vgg_state, "features.7.weight": torch.zeros(128, 64, 3, 3)}
    expected = r"wrong shapes \['features.7.weight: \[128, 64, 3, 3\] \(VGG16: \[128, 128, 3, 3\]\)"
    with pytest.raises(ValueError, match=expected):
        attempt(wrong, "wrong")
    with pytest.raises(ValueError, match="not a VGG16 state dict"):
        attempt({"conv.weight": torch.zeros(1)}, "other")
    with pytest.raises(ip.ModelNotFoundError, match="No VGG16 weights ship"):
        load_vgg16(tmp_path / "absent.safetensors")


def test_vgg16_preprocessing_is_caffe_style():
    vgg = VGG16Features()
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0], x[0, 1], x[0, 2] = 1.0, -1.0, 0.0  # R = white, G = black, B = mid-grey
    out = vgg.preprocess(x).flatten().tolist()
    assert out == pytest.approx([127.5 - 103.939, 0.0 - 116.779, 255.0 - 123.68])  # B, G, R order


def test_vgg16_model_folder_roundtrip(tmp_path, vgg_state, images):
    vgg = VGG16Features()
    vgg.load_state_dict({k: v for k, v in vgg_state.items() if int(k.split(".")[1]) <= 21})
    ip.save_pretrained(vgg, tmp_path / "vgg-folder", kind="feature")
    net = load_feature_network(tmp_path / "vgg-folder")
    assert isinstance(net, VGG16Perceptual) and net.name == "vgg16-conv43" and net.loss_weight == 5e-5
    with torch.no_grad():
        torch.testing.assert_close(net(images), vgg(images), rtol=0, atol=0)


def test_toyfaces_classifier_is_the_bundled_feature_network():
    net = load_feature_network("toyfaces-classifier-64")
    assert isinstance(net, ClassifierFeatures) and isinstance(net, FeatureNetwork)
    assert net.name == "toyfaces-classifier-64:stage2" and net.layer == "stage2" and not net.training
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        feats = net(x)
        torch.testing.assert_close(feats, net.classifier.features(x, "stage2"), rtol=0, atol=0)
        assert feats.shape == (2, 96, 16, 16)
        # other resolutions are area-resized to the classifier's 64x64
        big = F.interpolate(x, scale_factor=2, mode="nearest")
        torch.testing.assert_close(net(big), feats, rtol=1e-5, atol=1e-5)
    assert load_feature_network("classifier:toyfaces-classifier-64", layer="stage1").layer == "stage1"


def test_classifier_features_adapter_and_spec_errors(tmp_path):
    clf = AttributeClassifier([head_spec("a", "binary")], resolution=16, channels=[8, 8, 8]).eval()
    net = load_feature_network(clf, layer="stage1", loss_weight=0.7)
    assert isinstance(net, ClassifierFeatures) and net.loss_weight == 0.7
    with pytest.raises(ValueError, match=r"unknown feature layer 'stage9'"):
        ClassifierFeatures(clf, layer="stage9")
    assert load_feature_network(None) is None and load_feature_network("none") is None
    with pytest.raises(ip.ModelNotFoundError, match="unknown model 'no-such-net'"):
        load_feature_network("no-such-net")
    (tmp_path / "weights.bin").write_bytes(b"0")
    with pytest.raises(ValueError, match="unsupported feature-network file type '.bin'"):
        load_feature_network(tmp_path / "weights.bin")
    ip.save_pretrained(clf, tmp_path / "clf", kind="classifier")
    assert isinstance(load_feature_network(tmp_path / "clf"), ClassifierFeatures)


def test_default_feature_network_follows_the_generator():
    from idinvert_plugins.losses import default_feature_network

    toy = "classifier:toyfaces-classifier-64"
    assert default_feature_network("toyfaces-stylegan2-64", 64) == toy
    assert default_feature_network("weights/toyfaces-stylegan-64/", 64) == toy  # a folder
    assert default_feature_network("org/toyfaces-sg2@v1.0", 64) == toy  # a Hub id at a revision
    assert default_feature_network("toyfaces-stylegan2-64", 128) is None  # the classifier sees 64 px faces
    assert default_feature_network("out/rosinality-sg2-64", 64) is None  # no VGG16 ships: pixel loss only
