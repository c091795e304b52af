"""CUDA paths of the core (skipped without a GPU; run on a GPU machine with `pytest -m gpu`)."""

import pytest
import torch

from dipddpm.config import build
from dipddpm.methods import METHODS

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TINY = {"width": 16, "depth": 3, "input_depth": 8, "report_every": 10}


@pytest.mark.parametrize("method", ["dip", "guided_dip"])
def test_fit_on_cuda_improves_and_resumes(tiny_image_problem, method):
    m = METHODS.get(method)
    cfg = build(m.config_cls, {**TINY, "iters": 200, "lr": 0.02, "stages": 3}
                if method == "guided_dip" else {**TINY, "iters": 200, "lr": 0.02})
    states = {}

    def report(it, metrics, state):
        if it == 100:
            states["s"] = state()

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    whole = m.run(cfg, tiny_image_problem, report=report, seed=3, device="cuda")
    assert whole.metrics["psnr_gt_best"] > whole.metrics["psnr_noisy_input"]
    again = m.run(cfg, tiny_image_problem, seed=3, device="cuda", resume=states["s"])
    print(method, whole.metrics["psnr_gt_best"], again.metrics["psnr_gt_best"])
    assert again.metrics["psnr_gt_best"] == pytest.approx(whole.metrics["psnr_gt_best"],
                                                          abs=0.05)


def test_device_auto_uses_the_current_cuda_device():
    from dipddpm.methods.fitting import pick_device

    dev = pick_device("auto")
    assert dev.type == "cuda" and dev.index == torch.cuda.current_device()
