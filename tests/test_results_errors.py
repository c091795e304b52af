"""Bad input to `dipddpm results`: one line saying what was expected, exit 2, nothing written."""

import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()


def fails(*args, message: str):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.output and len(r.stderr.strip().splitlines()) == 1
    return r.stderr


def test_missing_directory(tmp_path):
    fails("results", "summarize", tmp_path / "nope", message="does not exist; expected a "
          "sweep results directory")


def test_a_file_is_not_a_sweep(tmp_path):
    f = tmp_path / "x.parquet"
    f.write_bytes(b"")
    fails("results", "summarize", f, message="is not a sweep result: it is a file")


def test_a_folder_without_trials_is_not_a_sweep(tmp_path):
    err = fails("results", "report", tmp_path, "--out", tmp_path / "r.html",
                message="is not a sweep result: it has no trials/ folder; expected "
                "<storage>/<sweep>/trials/part-*.parquet")
    assert not (tmp_path / "r.html").exists() and "holds sweeps" not in err


def test_the_storage_folder_points_to_its_sweeps(sweep_dir):
    fails("results", "summarize", sweep_dir.parent, message=f"it holds sweeps: {sweep_dir}")


def test_empty_sweep(tmp_path):
    (tmp_path / "s" / "trials").mkdir(parents=True)
    fails("results", "summarize", tmp_path / "s", message="has no trials yet")


def test_unreadable_parquet(sweep_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(sweep_dir, d)
    (d / "trials" / "part-zzz.parquet").write_text("not parquet")
    fails("results", "summarize", d, message="cannot read")


def test_parquet_without_the_trial_columns(tmp_path):
    (tmp_path / "s" / "trials").mkdir(parents=True)
    pq.write_table(pa.table({"a": [1]}), tmp_path / "s" / "trials" / "part-1.parquet")
    fails("results", "summarize", tmp_path / "s", message="lacks column(s) sweep, trial_id")


def test_newer_schema_version(sweep_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(sweep_dir, d)
    f = d / "trials" / "part-t000.parquet"
    t = pq.read_table(f)
    pq.write_table(t.replace_schema_metadata({b"dipddpm.schema_version": b"2"}), f)
    fails("results", "summarize", d, message="schema version '2'")


@pytest.mark.parametrize("args, message", [
    (["summarize", "{d}", "--metric", "psnr"], "unknown metric 'psnr'"),
    (["summarize", "{d}", "--by", "schedulr"],
     "unknown group key 'schedulr' for sweep 'fixture' (did you mean 'scheduler'?)"),
    (["summarize", "{d}", "--json", "--csv"], "pass only one of them"),
    (["summarize", "{d}", "--top", "0"], "--top must be >= 1"),
    (["summarize", "{d}", "--threshold", "20", "--metric", "objective", "--by", "nope"],
     "unknown group key 'nope'"),
    (["compare", "{d}", "--by", "optimizer"], "unknown group key 'optimizer'"),
    (["compare", "{d}", "--metric", "fid"], "unknown metric 'fid'"),
    (["plot", "{d}", "--kind", "histogram", "--out", "{o}.png"], "--kind must be one of"),
    (["plot", "{d}", "--kind", "curves", "--out", "{o}.jpg"], "--out must end in"),
    (["plot", "{d}", "--kind", "curves", "--by", "colour", "--out", "{o}.png"],
     "unknown group key 'colour'"),
    (["plot", "{d}", "--kind", "pareto", "--x", "flops", "--out", "{o}.png"],
     "--x must be iters or seconds"),
    (["report", "{d}", "--out", "{o}.txt"], "--out must end in .html"),
    (["export", "{d}", "--format", "xml", "--out", "{o}.xml"], "--format must be one of"),
    (["export", "{d}", "--format", "csv", "--table", "runs", "--out", "{o}.csv"],
     "--table must be one of"),
])
def test_bad_options(sweep_dir, tmp_path, args, message):
    out = tmp_path / "out"
    fails("results", *[a.format(d=sweep_dir, o=out) for a in args], message=message)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_importance_without_a_study(sweep_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(sweep_dir, d, ignore=shutil.ignore_patterns("optuna.db"))
    out = tmp_path / "imp.png"
    fails("results", "plot", d, "--kind", "importance", "--out", out,
          message="has no Optuna study")
    assert not out.exists()


def test_stages_without_a_stage_metric(sweep_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(sweep_dir, d)
    for f in (d / "metrics").glob("*.parquet"):
        t = pq.read_table(f)
        keep = pc.not_equal(t["metric"], "stage")
        pq.write_table(t.filter(keep), f)
    fails("results", "plot", d, "--kind", "stages", "--out", tmp_path / "s.png",
          message="has no 'stage' metric")
