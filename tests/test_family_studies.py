"""Each DIP-family method (self_diffusion, dip_sure, aseq_dip, dip_tv) runs as a study: its
replicates fused into one net equal the same pairs fitted one by one, and `output: ensemble`
adds one row per image beside the replicates' own."""

from __future__ import annotations

import pytest

from dipddpm.config import build
from dipddpm.methods import METHODS
from dipddpm.methods.study_pairs import build_pairs
from dipddpm.methods.study_run import run_study

FAMILY = ("self_diffusion", "dip_sure", "aseq_dip", "dip_tv")
STUDY = {"images": ["skimage:astronaut", "skimage:camera"], "replicates": 2, "size": 16,
         "sigma": 25, "seed": 0, "shared_noise": True}
SMALL = {"iters": 6, "report_every": 3, "width": 8, "depth": 2, "es_window": 2,
         "es_patience": 3}


def _study(name: str, mode: str, **extra):
    method = METHODS.get(name)
    cfg = build(method.config_cls, {**method.example_config, **SMALL, **extra})
    return run_study(method, cfg, build_pairs(method, STUDY, cfg, seed=0), mode=mode)


@pytest.mark.slow  # the fused-equals-separate property of each seam: tests/test_loop_seams.py
@pytest.mark.parametrize("name", FAMILY)
def test_a_family_study_fused_equals_its_pairs_one_by_one(name):
    fused, alone = _study(name, "fused"), _study(name, "serial")
    assert fused.mode == "fused" and len(fused.pairs) == 4
    for a, b in zip(fused.pairs, alone.pairs, strict=True):
        assert (a["image"], a["replicate"]) == (b["image"], b["replicate"])
        assert a["psnr_output"] == pytest.approx(b["psnr_output"], abs=1e-3)


@pytest.mark.parametrize("name", FAMILY)
def test_a_family_study_reports_the_ensemble_of_its_replicates(name):
    study = _study(name, "fused", output="ensemble")
    ens = [r for r in study.pairs if r["ensemble"]]
    assert len(study.pairs) == 6 and len(ens) == 2
    assert all(r["replicate"] == -1 and r["n_members"] == 2 for r in ens)
    assert "ens_psnr_output" in study.result.metrics
