"""`dipddpm results report`: one self-contained HTML page, checked as text and in Chromium."""

import base64
import html
import json
import re
import shutil
import subprocess

import pytest
from results_data import shared_sweep
from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()
DATA_PNG = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory):
    return shared_sweep(tmp_path_factory)


@pytest.fixture(scope="session")
def report(sweep_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    r = runner.invoke(app, ["results", "report", str(sweep_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_report_has_the_tables_spec_and_embedded_images(report, sweep_dir):
    text = report.read_text()
    for heading in ("Best trials", "Groups", "By scheduler", "By beta_schedule",
                    "Iterations to reach max PSNR / SSIM",
                    "Final vs best PSNR and best iteration", "Parameter importances",
                    "Failed trials", "Spec as run"):
        assert heading in text, heading
    assert text.count("<table") >= 6
    assert "loss is nan at iteration 10" in text  # the failed trial's error
    assert "search:" in text and "beta_schedule" in text  # the spec as run
    pngs = DATA_PNG.findall(text)
    # 5 figures + clean + noisy + 6 best trials' outputs
    assert len(pngs) >= 13
    for b64 in pngs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    clean = (sweep_dir / "artifacts" / "problem" / "clean.png").read_bytes()
    assert base64.b64encode(clean).decode() in pngs
    assert "image not present" not in text


def test_report_groups_and_labels(report):
    """Plain-DIP trials (no stage scheduler) are their own "—" group; image captions name the
    varying keys."""
    text = report.read_text()
    by_scheduler = text.split("By scheduler", 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<tr>\s*<td>([^<]*)</td>", by_scheduler)
    assert sorted(cells) == ["sharp_linear", "uniform", "—"]
    assert "mean ± std over seeds" in text and "the best trial&#x27;s configuration" in text
    assert "t010 · iters=30, stages=1, seed=0" in text  # the best trial's caption
    assert "beta_schedule=cosine, scheduler=uniform, seed=0" in text


def test_a_failing_figure_is_a_note_and_the_report_goes_on(sweep_dir, tmp_path, monkeypatch):
    from dipddpm.analysis import plots

    def broken(*args, **kwargs):
        raise ValueError("x and y must have same first dimension\nsecond line")

    monkeypatch.setattr(plots, "plot_pareto", broken)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["results", "report", str(sweep_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "report figure 'Quality against compute' failed (ValueError: x and y must have " \
        "same first dimension)" in r.stderr
    text = out.read_text()
    assert "this figure failed: ValueError: x and y must have same first dimension" in text
    assert "second line" not in text
    assert "Parameter importances" in text and "Spec as run" in text
    assert len(DATA_PNG.findall(text)) >= 12  # every other figure and image is still there


def test_report_needs_no_network(report):
    text = report.read_text()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", text)
    assert "url(" not in text and "<script" not in text and "<link" not in text


def test_report_from_parquet_files_only(sweep_dir, tmp_path):
    """A folder copied from a cluster with only trials/ and metrics/: still a full report,
    with notes where the images and the study would be."""
    d = tmp_path / "copied"
    for sub in ("trials", "metrics"):
        shutil.copytree(sweep_dir / sub, d / sub)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["results", "report", str(d), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "Best trials" in text and "image not present" in text
    assert "has no Optuna study" in text and "spec.resolved.yaml is not present" in text
    assert len(DATA_PNG.findall(text)) >= 4  # the figures that need only Parquet


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


# appended to a copy of the report: records script errors and images that did not decode
CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  document.body.setAttribute('data-check', JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    tables: document.querySelectorAll('table').length,
    errors: window.__errors}));
});
</script>"""


def test_report_opens_in_headless_chromium(report, tmp_path):
    exe = chromium()
    if exe is None:
        pytest.skip("chromium not found on PATH (Debian: apt-get install -y chromium)")
    page = tmp_path / "checked.html"
    page.write_text(report.read_text().replace("</body>", CHECK + "</body>"))
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=5000", "--dump-dom", page.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"data-check=\"([^\"]*)\"", p.stdout)
    assert m, "the page did not finish loading: " + p.stderr[-2000:]
    check = json.loads(html.unescape(m.group(1)))
    assert check["errors"] == [] and check["broken"] == []
    assert check["images"] >= 13 and check["tables"] >= 6
