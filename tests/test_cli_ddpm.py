"""The DDPM CLI through typer's runner: fit ddpm, sample, fit dip-prior-ddpm, bad input."""

import json

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()
DATA = ["--dataset", "skimage-patches", "--size", "32", "--data", "count=32", "--data",
        "eval_count=8", "--preset", "tiny", "--set", "iters=10"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def last_json(r):
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "ddpm"
    r = invoke("fit", "ddpm", *DATA, "--out", out, "--json")
    assert r.exit_code == 0, r.output
    return out, last_json(r)


def test_fit_ddpm_writes_checkpoint_config_samples_and_state(run_dir):
    out, s = run_dir
    for name in ("ddpm.pt", "ddpm.json", "samples.png", "train_state.pt"):
        assert (out / name).is_file(), name
    assert s["steps"] == 10 and s["checkpoint"] == str(out / "ddpm.pt")
    assert json.loads((out / "ddpm.json").read_text())["dataset"]["dataset"] == "skimage-patches"


def test_fit_ddpm_resume_continues_from_the_state(run_dir, tmp_path):
    out = tmp_path / "r"
    r = invoke("fit", "ddpm", *DATA, "--out", out, "--json")
    first = last_json(r)
    r = invoke("fit", "ddpm", *DATA[:-1], "iters=20", "--out", out, "--json", "--resume")
    assert r.exit_code != 0 and "does not match" in r.output  # iters changed: refused
    r = invoke("fit", "ddpm", *DATA, "--out", out, "--json", "--resume")
    assert r.exit_code == 0, r.output
    assert last_json(r)["train_loss_final"] == first["train_loss_final"]


def test_fit_ddpm_shows_progress_and_summary(tmp_path):
    r = invoke("fit", "ddpm", *DATA, "--out", tmp_path / "p")
    assert r.exit_code == 0, r.output
    assert "train loss" in r.output and "checkpoint" in r.output


def test_sample_writes_a_grid(run_dir, tmp_path):
    out, _ = run_dir
    grid = tmp_path / "grid.png"
    r = invoke("sample", "--checkpoint", out / "ddpm.pt", "--steps", "5", "--sampler", "ddim",
               "--n", "4", "--out", grid, "--json")
    assert r.exit_code == 0, r.output
    s = last_json(r)
    assert grid.is_file() and s["reverse_steps"] == 5 and s["t0"] == 99
    r = invoke("sample", "--checkpoint", out / "ddpm.pt", "--t0", "9", "--n", "2", "--out",
               grid, "--json")
    assert r.exit_code == 0 and last_json(r)["reverse_steps"] == 10
    assert last_json(r)["sampler"] == "ddpm"


def test_fit_dip_prior_ddpm_json(run_dir, tmp_path):
    out, _ = run_dir
    r = invoke("fit", "dip-prior-ddpm", "--checkpoint", out / "ddpm.pt", "--image",
               "skimage:camera", "--resize", "--preset", "tiny", "--t0", "5", "--save",
               tmp_path / "o.png", "--json")
    assert r.exit_code == 0, r.output
    s = last_json(r)
    assert s["t0"] == 5 and s["reverse_steps"] == 6 and (tmp_path / "o.png").is_file()
    for key in ("psnr_gt", "ssim_gt", "psnr_vs_dip", "psnr_dip", "wall_s_dip", "wall_s_ddpm",
                "psnr_ddpm_y", "psnr_ddpm_noise"):
        assert key in s


def bad(*args):
    r = invoke(*args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(run_dir, tmp_path):
    out, _ = run_dir
    ckpt = out / "ddpm.pt"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(ckpt.read_bytes()[:500])
    assert "corrupt" in bad("sample", "--checkpoint", corrupt, "--out", tmp_path / "g.png")
    assert "t0 must be in 0..99" in bad("sample", "--checkpoint", ckpt, "--t0", "100", "--out",
                                        tmp_path / "g.png")
    assert "--steps must be >= 1" in bad("sample", "--checkpoint", ckpt, "--steps", "0",
                                         "--out", tmp_path / "g.png")
    assert "t0 must be in 0..99" in bad("fit", "dip-prior-ddpm", "--checkpoint", ckpt,
                                           "--image", "skimage:camera", "--resize", "--t0",
                                           "100")
    assert "--resize" in bad("fit", "dip-prior-ddpm", "--checkpoint", ckpt, "--image",
                             "skimage:camera")
    assert "not found" in bad("fit", "dip-prior-ddpm", "--checkpoint", tmp_path / "nope.pt",
                              "--image", "skimage:camera")
    never = tmp_path / "never"
    assert "unknown dataset 'mnistt'" in bad("fit", "ddpm", "--dataset", "mnistt", "--out",
                                             never)
    assert "MNIST not found" in bad("fit", "ddpm", "--dataset", "mnist", "--data-root",
                                    tmp_path / "mn", "--out", never)
    assert not never.exists()  # nothing half-written
    assert not (tmp_path / "g.png").exists()
