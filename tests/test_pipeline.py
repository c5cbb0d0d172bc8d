"""Pipeline: a generator with what goes with it, from pipeline.json beside the weights or the naming rules."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
import torch
from conftest import tiny_stylegan2
from safetensors import safe_open

from idinvert_plugins import hub
from idinvert_plugins.editors.directions import Direction, DirectionNotFoundError
from idinvert_plugins.editors.manipulate import Manipulate
from idinvert_plugins.hub import save_pretrained
from idinvert_plugins.latent import Latent
from idinvert_plugins.models.idinvert_encoder import IDInvertEncoder
from idinvert_plugins.pipeline import PIPELINE_NAME, Pipeline, PipelineError, write_pipeline_config

R = 16


def _encoder(G, seed: int) -> IDInvertEncoder:
    torch.manual_seed(seed)
    return IDInvertEncoder(resolution=R, num_layers=G.num_layers, w_dim=G.w_dim, channel_base=8,
                           channel_max=16).eval()


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


@pytest.fixture
def models(tmp_path):
    """``tiny`` (generator, two directions) with the sibling ``tiny-encoder`` the naming rule finds, and two
    other encoders (``enc-a``, ``enc-b``) only a pipeline.json can point to."""
    root = tmp_path / "models"
    G = tiny_stylegan2(R, seed=0)
    gen = save_pretrained(G, root / "tiny", kind="generator")
    encoders = {name: _encoder(G, seed) for name, seed in (("tiny-encoder", 1), ("enc-a", 2), ("enc-b", 3))}
    for name, E in encoders.items():
        save_pretrained(E, root / name, kind="encoder")
    g = torch.Generator().manual_seed(5)
    for name in ("age", "smile"):
        Direction(torch.randn(G.w_dim, generator=g), name=name, source="random").save(
            gen / "directions" / f"{name}.safetensors")
    return {"root": root, "gen": gen, "G": G, **encoders}


def test_bundled_name_reads_its_pipeline_json_and_loads_components_on_first_use():
    pipe = Pipeline.from_pretrained("toyfaces-stylegan2-64")
    assert pipe.source == "pipeline.json" and pipe.folder == hub.resolve_model("toyfaces-stylegan2-64").folder
    assert pipe.config["encoder"] == "toyfaces-stylegan2-64-encoder" and pipe.default_method == "idinvert"
    assert not {"encoder", "encoders", "feature_net", "classifier"} & set(pipe._loaded)  # nothing loaded yet
    E = pipe.encoder
    assert E.resolved.name == "toyfaces-stylegan2-64-encoder" and (E.num_layers, E.w_dim) == (10, 256)
    assert pipe.encoders["conventional"].resolved.name == "toyfaces-stylegan2-64-encoder-conventional"
    assert pipe.classifier.resolved.name == "toyfaces-classifier-64"
    assert pipe.feature_net.name == "toyfaces-classifier-64:stage2"
    assert {"smile", "age", "eyeglasses"} <= set(pipe.directions)
    assert not any(p.requires_grad for p in [*pipe.generator.parameters(), *E.parameters()])
    # the v1 twin's pipeline.json names its own encoders
    v1 = Pipeline.from_pretrained("toyfaces-stylegan-64")
    assert v1.references()["encoder"] == "toyfaces-stylegan-64-encoder"
    assert v1.references()["encoders"] == {"conventional": "toyfaces-stylegan-64-encoder-conventional"}


def test_folder_without_pipeline_json_falls_back_to_the_naming_rules(models):
    pipe = Pipeline.from_pretrained(models["gen"])
    assert pipe.source == "fallback" and pipe.config["encoder"] == str(models["root"] / "tiny-encoder")
    assert _same_weights(pipe.encoder, models["tiny-encoder"])
    assert pipe.encoders == {} and pipe.feature_net is None and pipe.classifier is None  # not a toyfaces-* model
    assert sorted(pipe.directions) == ["age", "smile"] and pipe.default_method == "idinvert"
    # arguments override: no encoder at all, and an explicit one
    assert Pipeline.from_pretrained(models["gen"], encoder=None).encoder is None
    other = Pipeline.from_pretrained(models["gen"], encoder=str(models["root"] / "enc-b"))
    assert _same_weights(other.encoder, models["enc-b"])


def test_pipeline_json_with_relative_refs_wins_over_the_naming_rules(models):
    gen, root = models["gen"], models["root"]
    shutil.copytree(gen / "directions", root / "more-directions")
    Direction(torch.ones(models["G"].w_dim), name="glasses").save(root / "more-directions" / "glasses.safetensors")
    write_pipeline_config(gen, {"generator": ".", "encoder": "../enc-a", "encoders": {"conventional": "../enc-b"},
                                "feature_net": None, "directions": ["directions/", "../more-directions"],
                                "default_method": "encoder"})
    pipe = Pipeline.from_pretrained(gen)
    assert pipe.source == "pipeline.json" and pipe.default_method == "encoder"
    assert _same_weights(pipe.encoder, models["enc-a"]) and not _same_weights(pipe.encoder, models["tiny-encoder"])
    assert _same_weights(pipe.encoders["conventional"], models["enc-b"])
    assert sorted(pipe.directions) == ["age", "glasses", "smile"]
    # the default method is the pipeline's: encoder-only codes are exactly E(x)
    x = pipe.render(models["G"].mapping(models["G"].sample_z(2, seed=3))).clamp(-1, 1)
    result = pipe.invert(x)
    assert result.info["inverter"] == "encoder"
    with torch.no_grad():
        assert torch.allclose(result.codes, models["enc-a"](x), atol=1e-6)
    # a pipeline folder with no weights of its own names its generator
    (root / "bundle").mkdir()
    write_pipeline_config(root / "bundle", {"generator": "../tiny", "encoder": "../enc-b", "directions": None})
    bundle = Pipeline.from_pretrained(root / "bundle")
    assert bundle.folder == root / "bundle" and _same_weights(bundle.encoder, models["enc-b"])
    assert bundle.directions == {}


@pytest.mark.parametrize("config, message", [
    ({"encoder": "../missing-encoder"},
     r"pipeline.json: key 'encoder' = '../missing-encoder': no such folder .*missing-encoder"),
    ({"encoder": "no-such-named-model"},
     r"key 'encoder' = 'no-such-named-model': not a model folder \(relative to .*\), not a named model and not "
     r"a Hub id"),
    ({"encoder": "."}, r"key 'encoder' = '.': it is a generator model, not an encoder"),
    ({"encoders": {"conventional": "../tiny"}}, r"key 'encoders.conventional' = '../tiny': it is a generator"),
    ({"classifier": "../enc-a"}, r"key 'classifier' = '../enc-a': it is an encoder model, not a classifier"),
    ({"feature_net": "vgg16-conv43:vgg.safetensors"}, r"key 'feature_net' = 'vgg16-conv43:vgg.safetensors': no "
                                                      r"VGG16 weights at .*tiny/vgg.safetensors"),
    ({"encodr": "../enc-a"}, r"unknown key 'encodr' \(did you mean 'encoder'\?\)"),
    ({"encoder": 3}, r"key 'encoder' must be a string"),
    ({"generator": "../enc-a"}, r"key 'generator' = '../enc-a': a pipeline.json beside a generator's weights must "
                                r"say \"generator\": \".\""),
])
def test_bad_references_name_the_key_and_the_value(models, config, message):
    (models["gen"] / PIPELINE_NAME).write_text(json.dumps(config))
    with pytest.raises(PipelineError, match=message):
        Pipeline.from_pretrained(models["gen"])


def test_unusable_pipeline_json_and_mismatched_encoder(models, tmp_path):
    (models["gen"] / PIPELINE_NAME).write_text("{not json")
    with pytest.raises(PipelineError, match=r"pipeline.json is not valid JSON"):
        Pipeline.from_pretrained(models["gen"])
    # an encoder of another generator is refused on first use, naming the key
    other = tiny_stylegan2(R, seed=0, w_dim=16)
    save_pretrained(IDInvertEncoder(resolution=R, num_layers=other.num_layers, w_dim=16, channel_base=8,
                                    channel_max=16), models["root"] / "enc-other", kind="encoder")
    write_pipeline_config(models["gen"], {"encoder": "../enc-other"})
    pipe = Pipeline.from_pretrained(models["gen"])
    with pytest.raises(PipelineError, match=r"key 'encoder' = '../enc-other': encoder '../enc-other' \(W\+ 6x16, "
                                            r"16 px\) does not fit the generator \(W\+ 6x32"):
        _ = pipe.encoder


def test_hub_id_reference_from_a_pre_seeded_cache(models, tmp_path, monkeypatch):
    import huggingface_hub.constants as c
    from test_hub import seed_cache

    cache, sha = tmp_path / "hub", "c" * 40
    seed_cache(cache, "idinvert-test/tiny-encoder", {sha: models["root"] / "enc-b"}, {"main": sha})
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    write_pipeline_config(models["gen"], {"encoder": "idinvert-test/tiny-encoder"})
    pipe = Pipeline.from_pretrained(models["gen"])
    assert _same_weights(pipe.encoder, models["enc-b"]) and pipe.encoder.resolved.commit == sha
    write_pipeline_config(models["gen"], {"encoder": "idinvert-test/tiny-encoder@v9"})
    with pytest.raises(PipelineError, match=r"key 'encoder' = 'idinvert-test/tiny-encoder@v9': .*revision 'v9'"):
        Pipeline.from_pretrained(models["gen"])


def test_invert_edit_save_load_round_trip(models, tmp_path):
    pipe = Pipeline.from_pretrained(models["gen"])
    G = models["G"]
    x = pipe.render(G.mapping(G.sample_z(2, seed=1))).clamp(-1, 1)
    result = pipe.invert(x, "idinvert", steps=2)
    assert result.codes.shape == (2, G.num_layers, G.w_dim) and result.info["options"]["steps"] == 2
    edited = pipe.edit(result.codes[:1], "manipulate", direction="smile", strength=1.5)
    expected = Manipulate()(G, result.codes[:1], direction=pipe.directions["smile"], strength=1.5)
    assert torch.equal(edited.codes, expected.codes) and torch.equal(edited.images, expected.images)
    path = pipe.save(edited.codes, tmp_path / "out" / "a.safetensors", method="idinvert")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["generator"] == str(models["gen"]) and meta["method"] == "idinvert"
    loaded = pipe.load(path)
    assert loaded.wp.shape == (1, G.num_layers, G.w_dim) and torch.equal(loaded.wp, edited.codes)
    assert loaded.parts == {} and loaded.info["method"] == "idinvert"
    assert torch.equal(pipe.render(loaded), edited.images)  # re-rendered image identical
    # a latent with a part (S-space offsets) round-trips whole, and a W+ edit keeps the part
    with torch.no_grad():
        styles = {k: 0.5 * torch.ones_like(v) for k, v in list(G.styles(result.codes[:1]).items())[:2]}
    latent = Latent(result.codes[:1]).with_part("styles", styles)
    image = pipe.render(latent)
    assert not torch.equal(image, pipe.render(latent.wp))  # the offsets change the picture
    again = pipe.load(pipe.save(latent, tmp_path / "styles.safetensors"))
    assert sorted(again.parts) == ["styles"] and torch.equal(pipe.render(again), image)
    moved = pipe.edit(again, "manipulate", direction="age", strength=1.0)
    assert moved.latent.parts["styles"].keys() == styles.keys()
    assert torch.equal(moved.images, pipe.render(moved.latent))
    with pytest.raises(ValueError, match="a code file holds one image's code, got 2"):
        pipe.save(result.codes, tmp_path / "two.safetensors")
    with pytest.raises(DirectionNotFoundError, match=r"no direction 'smiel' in .*directions\. Available: age, smile"):
        pipe.edit(result.codes[:1], "manipulate", direction="smiel", strength=1.0)
    bare = Pipeline.from_pretrained(models["gen"], encoder="none")
    with pytest.raises(ValueError, match="method 'encoder' needs a domain-guided encoder"):
        bare.invert(x, "encoder")


def test_components_load_once_when_threads_share_a_pipeline(models, monkeypatch):
    from idinvert_plugins import pipeline as pipeline_module

    calls = []
    real = pipeline_module.load_model

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "load_model", counting)
    pipe = Pipeline.from_pretrained(models["gen"])
    seen, barrier = [], threading.Barrier(8)

    def worker():
        barrier.wait()
        seen.append(pipe.encoder)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(e is seen[0] for e in seen)


def test_cli_invert_and_info_use_the_pipeline(models, tmp_path, capsys):
    from idinvert_plugins.cli import main
    from idinvert_plugins.images import load_image, save_image

    G = models["G"]
    image = tmp_path / "face.png"
    with torch.no_grad():
        save_image(G(G.sample_z(1, seed=2))[0], image)
    write_pipeline_config(models["gen"], {"encoder": "../enc-a", "default_method": "encoder"})
    assert main(["invert", str(models["gen"]), str(image), "-o", str(tmp_path / "inv")]) == 0
    assert "1 image(s) inverted with encoder" in capsys.readouterr().out
    code = Pipeline.from_pretrained(models["gen"]).load(tmp_path / "inv" / "face.safetensors")
    with torch.no_grad():
        assert torch.allclose(code.wp, models["enc-a"](load_image(image, R)[None]), atol=1e-6)
    assert main(["info", str(models["gen"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pipeline"]["source"] == "pipeline.json"
    assert info["pipeline"]["resolved"]["encoder"] == str((models["root"] / "enc-a").resolve())
    (models["gen"] / PIPELINE_NAME).unlink()
    assert main(["info", str(models["gen"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["pipeline"]["source"] == "fallback" and info["pipeline"]["file"] is None
    assert Path(info["pipeline"]["resolved"]["encoder"]).name == "tiny-encoder"


def test_space_export_ships_a_pipeline_json_of_what_it_copies(tmp_path, monkeypatch):
    from idinvert_plugins.app.hf_space import export_space

    out = export_space(tmp_path / "space", "toyfaces-stylegan2-64", vendor=False)
    gen = out / "models" / "toyfaces-stylegan2-64"
    config = json.loads((gen / PIPELINE_NAME).read_text())
    bundled = json.loads((hub.resolve_model("toyfaces-stylegan2-64").folder / PIPELINE_NAME).read_text())
    named = {k: f"../{v}" for k, v in bundled["encoders"].items()}  # every named encoder travels too
    assert named["conventional"] == "../toyfaces-stylegan2-64-encoder-conventional"
    assert config == {"generator": ".", "encoder": "../toyfaces-stylegan2-64-encoder", "encoders": named,
                      "feature_net": "classifier:../toyfaces-classifier-64", "classifier": "../toyfaces-classifier-64",
                      "directions": "directions/", "default_method": "idinvert"}
    assert all((gen / ref / "model.safetensors").is_file() for ref in named.values())
    # away from the named models (no cards), the Space's pipeline loads everything from its own folders
    (tmp_path / "no-cards").mkdir()
    monkeypatch.setenv("IDINVERT_MODEL_CARDS", str(tmp_path / "no-cards"))
    pipe = Pipeline.from_pretrained(gen)
    assert Path(pipe.references()["encoder"]) == (out / "models" / "toyfaces-stylegan2-64-encoder").resolve()
    assert pipe.encoder.num_layers == 10 and pipe.classifier is not None and "smile" in pipe.directions


def test_convert_declares_an_encoder_converted_beside_the_generator(tmp_path, capsys):
    from conftest import reference_dir

    from idinvert_plugins.cli import main

    folder = reference_dir("idinvert")
    gen, enc = tmp_path / "ffhq", tmp_path / "ffhq-encoder"
    assert main(["convert", str(folder / "idinvert_stylegan64_generator.pth"), "-o", str(gen)]) == 0
    assert not (gen / PIPELINE_NAME).exists()  # nothing to declare yet: the naming rules will find an encoder
    assert main(["convert", str(folder / "idinvert_stylegan64_encoder.pth"), "-o", str(enc)]) == 0
    shutil.rmtree(gen)
    capsys.readouterr()
    assert main(["convert", str(folder / "idinvert_stylegan64_generator.pth"), "-o", str(gen)]) == 0
    assert f"wrote {gen / PIPELINE_NAME} (the generator's pipeline: its encoder ../ffhq-encoder)" in \
        capsys.readouterr().out
    assert json.loads((gen / PIPELINE_NAME).read_text()) == {"generator": ".", "encoder": "../ffhq-encoder",
                                                              "default_method": "idinvert"}
    pipe = Pipeline.from_pretrained(gen)
    assert pipe.source == "pipeline.json" and (pipe.encoder.num_layers, pipe.encoder.w_dim) == (10, 512)


def test_hub_generator_with_a_pipeline_json_and_a_subfolder_encoder(models, tmp_path, monkeypatch):
    """A Hub repo laid out like diffusers: the generator at the top, pipeline.json beside it, the encoder in a
    subfolder (here already in the pre-seeded cache, offline)."""
    import huggingface_hub.constants as c
    from test_hub import seed_cache

    repo = tmp_path / "repo"
    shutil.copytree(models["gen"], repo)
    shutil.copytree(models["root"] / "enc-a", repo / "encoder")
    write_pipeline_config(repo, {"generator": ".", "encoder": "encoder/", "default_method": "encoder"})
    cache, sha = tmp_path / "hub", "d" * 40
    seed_cache(cache, "idinvert-test/tiny-pipeline", {sha: repo}, {"main": sha})
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    pipe = Pipeline.from_pretrained("idinvert-test/tiny-pipeline")
    assert pipe.source == "pipeline.json" and pipe.generator.resolved.commit == sha
    assert _same_weights(pipe.encoder, models["enc-a"]) and pipe.default_method == "encoder"
    assert sorted(pipe.directions) == ["age", "smile"]


def test_invert_composes_embed_and_refine_from_python():
    pipe = Pipeline.from_pretrained("toyfaces-stylegan2-64")
    G = pipe.generator
    with torch.no_grad():
        x = G.synthesis(G.mapping(G.sample_z(1, seed=0)))
    composed = pipe.invert(x, embed="encoder", refine=["wplus"], steps=2)
    assert composed.info["inverter"] == "encoder+wplus" and composed.info["refine"] == ["wplus"]
    encoded = pipe.invert(x, "encoder")
    assert torch.equal(composed.init_codes, encoded.codes)  # the embedding stage is the encoder's code
    assert not torch.equal(composed.codes, encoded.codes) and len(composed.losses) == 2
    with pytest.raises(ValueError, match="either method= or embed="):
        pipe.invert(x, "idinvert", refine="wplus")
