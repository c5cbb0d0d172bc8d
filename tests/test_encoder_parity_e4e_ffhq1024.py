"""Parity with the official code: the e4e_ffhq1024 fixture (../shared/fixtures/encoders) converted
by `idinvert convert`'s converter and run by this library
matches the official outputs within the fixtures README's tolerance."""

from encoder_fixtures import ATOL, run_parity


def test_e4e_ffhq1024_matches_the_official_outputs():
    diffs = run_parity("e4e_ffhq1024")
    assert diffs and max(diffs.values()) < ATOL, diffs
