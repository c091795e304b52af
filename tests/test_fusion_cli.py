"""`dipddpm fit dip|guided-dip --replicates K`: K seeds of one image, per-member metrics and
their mean in --json; serial members are exactly the single fits of their seeds."""

import json

from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()
ARGS = ["--image", "skimage:astronaut", "--size", "32", "--preset", "tiny", "--iters", "10",
        "--set", "depth=2", "--json"]


def fit_json(*args):
    r = runner.invoke(app, ["fit", "dip", *ARGS, *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_replicates_give_every_member_and_the_mean():
    s = fit_json("--replicates", "3", "--seed", "2", "--fusion", "serial")
    assert s["replicates"] == 3 and s["fusion"] == "serial"
    assert [m["seed"] for m in s["members"]] == [2, 3, 4]
    own = fit_json("--seed", "2")  # member 0 is the plain fit (--seed seeds the noise too)
    assert s["members"][0]["psnr_gt_final"] == own["psnr_gt_final"]
    assert s["members"][0]["psnr_noisy_input"] == s["members"][2]["psnr_noisy_input"]
    finals = [m["psnr_gt_final"] for m in s["members"]]
    assert abs(s["mean"]["psnr_gt_final"] - sum(finals) / 3) < 1e-9
    assert len(set(finals)) == 3
    assert s["psnr_gt_final"] == finals[0]  # the top level stays member 0's (the contract)


def test_fused_replicates_run_and_a_bad_count_is_one_line():
    s = fit_json("--replicates", "2", "--fusion", "fused")
    assert s["fusion"] == "fused" and len(s["members"]) == 2
    r = runner.invoke(app, ["fit", "dip", *ARGS, "--replicates", "0"])
    assert r.exit_code == 2 and "--replicates must be >= 1" in r.output
    r = runner.invoke(app, ["fit", "dip", *ARGS, "--replicates", "2", "--fusion", "fast"])
    assert r.exit_code == 2 and "fusion mode must be auto, fused or serial" in r.output


def test_sweep_show_gives_members_and_memory_per_trial():
    from pathlib import Path


    spec = Path(__file__).parents[1] / "sweeps" / "quick.yaml"
    r = runner.invoke(app, ["sweep", "show", str(spec), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["members_per_trial"] == 1 and s["memory_per_trial_mib"] > 0
    text = runner.invoke(app, ["sweep", "show", str(spec)]).stdout
    assert "members per trial: 1; expected memory per trial: " in text
