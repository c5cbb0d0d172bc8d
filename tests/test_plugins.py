"""Plugin discovery: built-ins, hooks/ directory, entry points of a real (throwaway) distribution, and
isolation of broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from idinvert_plugins import hookspecs
from idinvert_plugins.editors import Editor, Param
from idinvert_plugins.plugins import PluginError, Plugins, UnknownNameError

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_builtins_register_through_the_same_hooks():
    plugins = Plugins(plugins_dirs=[], load_entry_points=False)
    assert {"interpolate", "style-mix"} <= set(plugins.names("editor"))
    assert plugins.names("latent_space") == ["w", "wp", "z"]
    assert {"stylegan", "stylegan2"} <= set(plugins.names("generator"))
    assert {"genforce", "rosinality", "nvlabs"} <= set(plugins.names("converter"))
    assert "idinvert-encoder" in plugins.names("encoder")
    origins = {r.name: r.plugin for r in plugins.registered("editor")}
    assert origins["interpolate"] == "idinvert_plugins.builtins.core"
    assert not plugins.problems, plugins.problems


def test_hooks_dir_example_editor_is_discovered_and_runs(sg2):
    plugins = Plugins(load_entry_points=False)  # default dirs: the repo's hooks/
    editor = plugins.get("editor", "toward-average")
    assert [r.source for r in plugins.registered("editor") if r.name == "toward-average"][0].startswith("file ")
    codes = sg2.to_wplus(sg2.mapping(sg2.sample_z(2, seed=1)))
    res = editor(sg2, codes, strength=1.0, layers=(0, 3))
    # layers 0-2 become exactly w_avg, the rest are untouched
    assert torch.allclose(res.codes[:, :3], sg2.w_avg.expand(2, 3, -1))
    assert torch.equal(res.codes[:, 3:], codes[:, 3:])
    assert res.images.shape == (2, 3, sg2.resolution, sg2.resolution)
    with pytest.raises(ValueError, match=r"strength.*outside \[0.0, 1.0\]"):
        editor(sg2, codes, strength=2.0)
    with pytest.raises(ValueError, match=r"no parameter\(s\) \['bogus'\]"):
        editor(sg2, codes, bogus=1)


def test_broken_plugins_are_isolated_and_named(tmp_path, recwarn):
    d = tmp_path / "plugs"
    write(d / "a_broken_import.py", "import not_a_real_module_xyz\n")
    write(d / "b_raising_hook.py", """
        import idinvert_plugins
        @idinvert_plugins.hookimpl
        def register_editors(register):
            raise RuntimeError("boom in hook")
    """)
    write(d / "c_duplicate.py", """
        import idinvert_plugins
        from idinvert_plugins.editors.interpolate import Interpolate
        @idinvert_plugins.hookimpl
        def register_editors(register):
            register(Interpolate())
    """)
    write(d / "d_typo.py", """
        import idinvert_plugins
        @idinvert_plugins.hookimpl
        def register_editorz(register):
            pass
    """)
    write(d / "e_good.py", """
        import idinvert_plugins
        from idinvert_plugins.editors import Editor
        class Noop(Editor):
            name = "noop"
            def edit(self, generator, codes):
                return codes
        @idinvert_plugins.hookimpl
        def register_editors(register):
            register(Noop())
    """)
    plugins = Plugins(plugins_dirs=[d], load_entry_points=False)
    by_plugin = {p.plugin: p for p in plugins.problems}
    assert "not_a_real_module_xyz" in by_plugin["plugs/a_broken_import.py"].message
    assert by_plugin["plugs/a_broken_import.py"].stage == "import"
    assert "boom in hook" in by_plugin["plugs/b_raising_hook.py"].message
    assert "already registered by plugin 'idinvert_plugins.builtins.core'" in by_plugin["plugs/c_duplicate.py"].message
    assert "register_editorz" in by_plugin["plugs/d_typo.py"].message
    assert "Did you mean register_editors" in by_plugin["plugs/d_typo.py"].hint
    # the good plugin and the built-ins still load; the first registration of a clashing name wins
    assert "noop" in plugins.names("editor")
    assert plugins.registered("editor")[[r.name for r in plugins.registered("editor")].index("interpolate")].plugin \
        == "idinvert_plugins.builtins.core"
    assert any("boom in hook" in str(w.message) for w in recwarn)
    with pytest.raises(UnknownNameError, match=r"unknown editor 'nope'.*Known: .*interpolate.*failed to load"):
        plugins.get("editor", "nope")


def test_strict_mode_raises(tmp_path, monkeypatch):
    write(tmp_path / "p" / "bad.py", "raise ImportError('nope')\n")
    monkeypatch.setenv("IDINVERT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="bad.py.*nope"):
        Plugins(plugins_dirs=[tmp_path / "p"], load_entry_points=False)


def test_every_hook_is_documented_and_exercised():
    for name in hookspecs.hook_names():
        doc = getattr(hookspecs.IdinvertHookSpecs, name).__doc__
        example = "cli.add_parser(" if name == "register_commands" else "register("
        assert doc and example in doc, f"hook {name} lacks the plugin author's documentation and example"
    plugins = Plugins(plugins_dirs=[], load_entry_points=False)
    from idinvert_plugins.plugins import HOOK_KINDS, SPECIAL_HOOKS

    assert set(HOOK_KINDS) | set(SPECIAL_HOOKS) == set(hookspecs.hook_names())
    for kind in ("generator", "latent_space", "latent_part", "embedder", "refiner", "inverter", "editor",
                 "converter", "encoder"):
        assert plugins.names(kind), f"no built-in registers a {kind}"


def _make_dist(site: Path, dist: str, module: str, source: str, ep_name: str) -> None:
    """A real installed distribution: a module plus ``<dist>.dist-info`` with entry_points.txt."""
    write(site / module / "__init__.py", source)
    info = site / f"{dist}-0.1.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    write(info / "entry_points.txt", f"[idinvert_plugins]\n{ep_name} = {module}\n")
    write(info / "RECORD", "")


THIRD_PARTY = """
import torch
import idinvert_plugins
from idinvert_plugins.editors import Editor, Param

class Negate(Editor):
    name = "negate-offset"
    description = "Reflect the code through w_avg (a third-party example)."
    params = (Param("amount", "float", default=1.0, min=0.0, max=2.0),)
    def edit(self, generator, codes, *, amount):
        return codes + amount * (generator.w_avg - codes)

@idinvert_plugins.hookimpl
def register_editors(register):
    register(Negate())
"""


def test_entry_point_distribution_is_discovered_and_runs(tmp_path):
    site = tmp_path / "site"
    _make_dist(site, "idinvert_negate", "idinvert_negate", THIRD_PARTY, "negate")
    _make_dist(site, "idinvert_broken", "idinvert_broken", "raise RuntimeError('broken on import')\n", "broken")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    env.pop("IDINVERT_LOAD_PLUGINS", None)
    out = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "plugins", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    items = {(i["kind"], i["name"]): i for i in listing["items"]}
    assert items[("editor", "negate-offset")]["plugin"] == "negate"
    assert "entry point negate = idinvert_negate (idinvert_negate 0.1)" in items[("editor", "negate-offset")]["source"]
    problems = listing["problems"]
    assert problems and problems[0]["plugin"] == "broken" and "broken on import" in problems[0]["message"]
    assert "IDINVERT_LOAD_PLUGINS" in problems[0]["hint"]
    # the text listing shows it as well
    text = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "plugins"], env=env,
                          capture_output=True, text=True, timeout=120).stdout
    assert "negate-offset" in text and "broken on import" in text
    # ... and it runs on a real generator
    script = textwrap.dedent("""
        import torch, idinvert_plugins
        from tests.conftest import tiny_stylegan2
        G = tiny_stylegan2()
        codes = G.to_wplus(G.mapping(G.sample_z(2, seed=3)))
        res = idinvert_plugins.get_editor("negate-offset")(G, codes, amount=2.0)
        expected = 2 * G.w_avg - codes
        print(float((res.codes - expected).abs().max()), tuple(res.images.shape))
    """)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr
    err, shape = run.stdout.strip().split(" ", 1)
    assert float(err) < 1e-5 and shape == "(2, 3, 16, 16)"
    # IDINVERT_LOAD_PLUGINS='' is the escape hatch: no entry point loads
    env["IDINVERT_LOAD_PLUGINS"] = ""
    quiet = json.loads(subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "plugins", "--json"], env=env,
                                      capture_output=True, text=True, timeout=120).stdout)
    assert not quiet["problems"] and ("editor", "negate-offset") not in {(i["kind"], i["name"])
                                                                       for i in quiet["items"]}


def test_plugins_dir_flag_and_env(tmp_path):
    write(tmp_path / "mine" / "x.py", THIRD_PARTY)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "--plugins-dir", str(tmp_path / "mine"),
                          "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120)
    names = {i["name"] for i in json.loads(out.stdout)["items"]}
    assert "negate-offset" in names and "toward-average" not in names  # the flag replaces the default hooks/
    env["IDINVERT_PLUGINS_DIR"] = str(tmp_path / "mine")
    out = subprocess.run([sys.executable, "-m", "idinvert_plugins.cli", "plugins", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert "negate-offset" in {i["name"] for i in json.loads(out.stdout)["items"]}


def test_param_validation():
    p = Param("steps", "int", default=3, min=2, max=10)
    assert p.validate("4") == 4
    with pytest.raises(ValueError, match="must be a number"):
        p.validate("many")
    c = Param("mode", "choice", default="a", choices=("a", "b"))
    with pytest.raises(ValueError, match=r"not one of \['a', 'b'\]"):
        c.validate("z")

    class Needs(Editor):
        name = "needs"
        params = (Param("other", "code", required=True, help="a second code"),)

    with pytest.raises(ValueError, match="'other' is required"):
        Needs().resolve_params({})


def test_param_kind_is_validated_at_declaration():
    from idinvert_plugins.params import PARAM_KINDS

    with pytest.raises(ValueError, match=r"parameter 'amount' has unknown kind 'flaot' \(did you mean 'float'\?\)"
                                         r"; valid kinds: float, int, bool, choice, layers, code, image, mask, "
                                         r"direction"):
        Param("amount", "flaot", default=1.0)
    with pytest.raises(ValueError, match="unknown kind 'slider'; valid kinds"):
        Param("amount", "slider")
    with pytest.raises(ValueError, match="declares no choices"):
        Param("mode", "choice")
    assert {Param("x", k, choices=("a",)).kind for k in PARAM_KINDS} == set(PARAM_KINDS)


def test_a_trylast_plugin_cannot_take_over_a_builtin_name(tmp_path):
    write(tmp_path / "p" / "usurper.py", """
        import idinvert_plugins
        from idinvert_plugins.editors import Editor

        class Fake(Editor):
            name = "interpolate"
            description = "not the built-in"

        @idinvert_plugins.hookimpl(trylast=True)
        def register_editors(register):
            register(Fake())
    """)
    plugins = Plugins(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    assert plugins.get("editor", "interpolate").description != "not the built-in"
    assert [r.plugin for r in plugins.registered("editor") if r.name == "interpolate"] == [
        "idinvert_plugins.builtins.core"]
    [problem] = [p for p in plugins.problems if "interpolate" in p.message]
    assert problem.plugin == "p/usurper.py" and "already registered by plugin 'idinvert_plugins.builtins.core'" in \
        problem.message


def test_a_hook_that_raises_registers_nothing(tmp_path):
    write(tmp_path / "p" / "half.py", """
        import idinvert_plugins
        from idinvert_plugins.editors import Editor

        class First(Editor):
            name = "first-of-two"
            description = "registered before the hook raises"

        @idinvert_plugins.hookimpl
        def register_editors(register):
            register(First())
            raise RuntimeError("boom")
    """)
    plugins = Plugins(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    assert "first-of-two" not in plugins.names("editor")
    [problem] = [p for p in plugins.problems if p.plugin == "p/half.py"]
    assert "RuntimeError: boom" in problem.message and "first-of-two" in problem.message
    assert "None of its items are available" in problem.hint


@pytest.mark.parametrize(("hook", "obj", "expected"), [
    ("register_refiners", "object()", "register_refiners expects an instance of idinvert_plugins.inverters.stages"
                                      ".Refiner"),
    ("register_embedders", "object()", "register_embedders expects an instance of"),
    ("register_latent_parts", "object()", "register_latent_parts expects an instance of idinvert_plugins.latent"),
    ("register_inverters", "type('X', (), {'name': 'x'})()", "register_inverters expects an object with name"),
])
def test_every_kind_is_validated_at_registration(tmp_path, hook, obj, expected):
    write(tmp_path / "p" / "wrong.py", f"""
        import idinvert_plugins

        @idinvert_plugins.hookimpl
        def {hook}(register):
            register({obj}, name="wrong-thing")
    """)
    plugins = Plugins(plugins_dirs=[tmp_path / "p"], load_entry_points=False)
    assert any(expected in p.message for p in plugins.problems), plugins.problems


def test_plugin_commands_are_added_and_clashes_reported(tmp_path, capsys):
    write(tmp_path / "p" / "hello.py", """
        import idinvert_plugins

        @idinvert_plugins.hookimpl
        def register_commands(cli):
            p = cli.add_parser("hello", help="say hello")
            p.add_argument("who")
            p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)
    """)
    write(tmp_path / "p" / "clash.py", """
        import idinvert_plugins

        @idinvert_plugins.hookimpl
        def register_commands(cli):
            cli.add_parser("invert", help="takes a built-in name")
    """)
    from idinvert_plugins.cli import main

    assert main(["--plugins-dir", str(tmp_path / "p"), "hello", "world"]) == 0
    assert "hello world" in capsys.readouterr().out
    assert main(["--plugins-dir", str(tmp_path / "p"), "plugins"]) == 0
    out = capsys.readouterr().out
    assert "Commands added by plugins" in out and "hello" in out
    assert "clash.py" in out and "conflicting subparser" in out
