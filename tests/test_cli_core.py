"""The core CLI through typer's runner: fit dip / guided-dip, inspect stages / betas, bad input."""

import json

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_fit_dip_json_has_the_contract_keys(tmp_path):
    out = tmp_path / "out.png"
    r = invoke("fit", "dip", "--image", "skimage:astronaut", "--size", "32", "--preset", "tiny",
               "--iters", "20", "--save", str(out), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("psnr_gt_final", "psnr_gt_best", "psnr_best_iter", "psnr_noisy_input", "iters",
                "wall_s"):
        assert key in d
    assert d["iters"] == 20 and out.is_file()


def test_fit_guided_dip_prints_final_and_best():
    r = invoke("fit", "guided-dip", "--preset", "tiny", "--image", "skimage:camera", "--size",
               "32", "--iters", "24", "--set", "scheduler=sharp_linear", "--set", "stages=3")
    assert r.exit_code == 0, r.output
    assert "final output" in r.output and "best" in r.output


def test_inspect_stages_json_counts_and_plot(tmp_path):
    plot = tmp_path / "stages.png"
    r = invoke("inspect", "stages", "--scheduler", "uniform", "--iters", "2000", "--stages", "9",
               "--json", "--plot", str(plot))
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["counts"] == [125] + [250] * 7 + [125]
    assert plot.stat().st_size > 1000


def test_inspect_betas_json(tmp_path):
    r = invoke("inspect", "betas", "--schedule", "cosine", "--timesteps", "1000", "--json",
               "--plot", str(tmp_path / "b.png"))
    d = json.loads(r.stdout)
    assert len(d["betas"]) == 1000 and d["alphas_cumprod"][500] == pytest.approx(0.4923,
                                                                                 abs=5e-4)


@pytest.mark.parametrize("args, message", [
    (["fit", "dip", "--image", "/no/such.png"], "image not found: /no/such.png"),
    (["fit", "dip", "--image", "skimage:camera", "--preset", "nope"], "unknown preset 'nope'"),
    (["fit", "dip", "--image", "skimage:camera", "--set", "net=resnet"], "unknown net"),
    (["fit", "dip", "--image", "skimage:camera", "--set", "bogus=1"], "unknown config key"),
    (["fit", "dip", "--image", "skimage:camera", "--size", "16"], "multiple 32"),
    (["inspect", "stages", "--scheduler", "nope", "--iters", "10", "--stages", "2"],
     "valid names"),
    (["inspect", "stages", "--scheduler", "sharp_linear", "--iters", "10", "--stages", "5"],
     "N = 10"),
    (["inspect", "betas", "--schedule", "quadratic", "--timesteps", "10"], "valid names"),
    (["inspect", "stages", "--scheduler", "uniform", "--iters", "10", "--stages", "2", "--set",
      "x=3"], "parameter of sharp_linear"),
    # the coarsest scale would be 1x1: BatchNorm cannot train on one value per channel
    (["fit", "dip", "--image", "skimage:camera", "--size", "32", "--iters", "2"], "at least 64"),
    (["fit", "guided-dip", "--preset", "guided_dip", "--image", "skimage:camera", "--size",
      "64", "--iters", "20"], "at least 128"),
    (["fit", "dip", "--image", "skimage:camera", "--size", "64", "--set", "net=segnet", "--set",
      "depth=6"], "at most 5 blocks"),
    (["fit", "dip", "--image", "skimage:camera", "--size", "64", "--device", "foo"],
     "device must be"),
    (["fit", "dip", "--image", "skimage:camera", "--size", "64", "--device", "cuda:7"],
     "CUDA device(s)"),
    (["fit", "guided-dip", "--image", "skimage:camera", "--size", "64", "--iters", "20",
      "--set", "scheduler=sharp_linear", "--set", "stages=9"], "N = 20"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    r = invoke(*args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1


def test_unreadable_image_is_one_line(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("garbage")
    r = invoke("fit", "dip", "--image", str(bad))
    assert r.exit_code == 2 and "cannot read image" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
