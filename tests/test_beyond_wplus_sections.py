"""``benchmarks/beyond_wplus.py --write`` keeps one section of docs/results-beyond-wplus.md and one JSON entry per
generator: writing one generator's results leaves another's as they were (no inversions: the writer on fake rows)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("beyond_wplus_bench", REPO / "benchmarks" / "beyond_wplus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(generator: str, mse: float) -> dict:
    return {"generator": generator, "n": 4, "reconstruction": {"rows": {"idinvert": {"values": {"mse": mse}}}}}


def test_writing_one_generator_keeps_the_others_section_and_entry(tmp_path):
    bw = _script()
    page, data = tmp_path / "page.md", tmp_path / "page.json"
    page.write_text("# Beyond W+\n\nintro kept\n\n## The numbers\n")
    bw.write_results("gen-a", _results("gen-a", 0.1), "| idinvert | 0.1000 |", page=page, results_json=data)
    bw.write_results("gen-b", _results("gen-b", 0.2), "| idinvert | 0.2000 |", page=page, results_json=data)
    text = page.read_text()
    assert text.startswith("# Beyond W+\n\nintro kept\n\n## The numbers\n")
    begin_a, end_a = bw.markers("gen-a")
    begin_b, end_b = bw.markers("gen-b")
    assert text.index(begin_a) < text.index("| idinvert | 0.1000 |") < text.index(end_a) < text.index(begin_b)
    assert text.index(begin_b) < text.index("| idinvert | 0.2000 |") < text.index(end_b)
    assert "### gen-a\n" in text and "### gen-b\n" in text

    # rewriting B replaces B's numbers in place and leaves A's section byte for byte
    a_section = text[text.index(begin_a):text.index(end_a) + len(end_a)]
    bw.write_results("gen-b", _results("gen-b", 0.3), "| idinvert | 0.3000 |", page=page, results_json=data)
    text = page.read_text()
    assert "0.2000" not in text and text.count("| idinvert | 0.3000 |") == 1
    assert text.count(begin_b) == 1 and text.count("### gen-b\n") == 1
    assert a_section in text
    stored = json.loads(data.read_text())["generators"]
    assert stored["gen-a"]["reconstruction"]["rows"]["idinvert"]["values"]["mse"] == 0.1
    assert stored["gen-b"]["reconstruction"]["rows"]["idinvert"]["values"]["mse"] == 0.3


def test_a_one_generator_json_is_kept_under_its_generator(tmp_path):
    bw = _script()
    page, data = tmp_path / "page.md", tmp_path / "page.json"
    data.write_text(json.dumps(_results("gen-a", 0.1)))
    bw.write_results("gen-b", _results("gen-b", 0.2), "B", page=page, results_json=data)
    stored = json.loads(data.read_text())
    assert set(stored) == {"generators"} and set(stored["generators"]) == {"gen-a", "gen-b"}
    assert stored["generators"]["gen-a"]["reconstruction"]["rows"]["idinvert"]["values"]["mse"] == 0.1


def test_the_committed_page_has_a_section_per_bundled_generator():
    bw = _script()
    text = bw.PAGE.read_text()
    stored = json.loads(bw.RESULTS.read_text())["generators"]
    for generator in ("toyfaces-stylegan2-64", "toyfaces-stylegan-64"):
        begin, end = bw.markers(generator)
        assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)
        assert generator in stored
