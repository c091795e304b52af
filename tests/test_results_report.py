"""`dipddpm results report`: one self-contained HTML page, checked as text and in Chromium."""

import base64
import html
import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from dipddpm.cli import app

runner = CliRunner()
DATA_PNG = re.compile(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'")


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


SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def test_report_needs_no_network(report):
    """Scripts are inline (plotly.js once, the figures, the table sorter); outside them nothing
    points at the network."""
    text = report.read_text()
    scripts = SCRIPT.findall(text)
    assert scripts and all("src" not in attrs for attrs, _ in scripts)
    assert sum("Plotly.newPlot" not in body and "plotly.js" in body[:2000].lower()
               for _, body in scripts) == 1  # the library itself, once
    rest = SCRIPT.sub("", text)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", rest)
    assert "url(" not in rest and "<link" not in rest and "@import" not in rest


def test_report_has_the_interactive_panels(report):
    text = report.read_text()
    for heading in ("Leaderboard", "Parallel coordinates of the searched parameters",
                    "Learning curves", "Outputs over iterations"):
        assert f"<h3>{heading}" in text, heading
    board = text.split("id='leaderboard'", 1)[1].split("</table>", 1)[0]
    assert board.count("<tr>") == 1 + 12  # the heading and every trial
    for status in ("COMPLETED", "PRUNED", "FAILED"):
        assert f"<span class='badge {status}'>" in board
    assert board.count("class='thumb'") == 10  # the fixture's completed trials have outputs
    assert board.count("<code>dipddpm fit guided-dip ") == 12  # each trial's reproduce
    assert '"type":"parcoords"' in text and '"ASHA rung"' in text
    strips = text.split("Outputs over iterations", 1)[1].split("<h2>", 1)[0]
    assert "iteration 10" in strips and "iteration 40" in strips


def test_leaderboard_shows_a_reproduce_column_when_present(sweep_dir):
    from dipddpm.analysis import load_sweep
    from dipddpm.analysis.leaderboard import leaderboard_html

    sweep = load_sweep(sweep_dir)
    sweep.trials = sweep.trials.drop(columns="reproduce")  # a sweep from before the column
    assert "<th title='click to sort'>reproduce</th>" not in leaderboard_html(sweep)
    sweep.trials["reproduce"] = "dipddpm fit --set lr=0.01 <x>"
    board = leaderboard_html(sweep)
    assert "<th title='click to sort'>reproduce</th>" in board
    assert board.count("<code>dipddpm fit --set lr=0.01 &lt;x&gt;</code>") == 12


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


# put at the top of a copy of the report: no request may leave the page (CSP; a blocked one is
# recorded), and after load the page reports script errors, requests made (resource timing),
# images that did not decode, what plotly drew, and whether the leaderboard sorts
CSP = ("<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
       "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:; worker-src blob:\">")
CHECK = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
document.addEventListener('securitypolicyviolation',
  e => window.__errors.push('blocked ' + e.blockedURI + ' (' + e.violatedDirective + ')'));
window.addEventListener('load', () => setTimeout(() => {
  const imgs = Array.from(document.images);
  const board = document.getElementById('leaderboard');
  const idCol = Array.from(board.tHead.rows[0].cells).findIndex(c => c.textContent === 'trial');
  board.tHead.rows[0].cells[idCol].click();
  const ids = Array.from(board.tBodies[0].rows).map(r => r.cells[idCol].textContent);
  document.body.setAttribute('data-check', JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    tables: document.querySelectorAll('table').length,
    requests: performance.getEntriesByType('resource').map(r => r.name)
      .filter(n => !n.startsWith('data:')),
    plots: document.querySelectorAll('.js-plotly-plot').length,
    parcoords: document.querySelectorAll('#parallel-coordinates .parcoords .axis').length,
    curves: document.querySelectorAll('#learning-curves .scatterlayer .trace').length,
    sorted: ids,
    errors: window.__errors}));
}, 500));
</script>"""


def open_in_chromium(page_html: str, tmp_path) -> dict:
    """Load the page (with CSP and CHECK) in headless Chromium; the check's JSON."""
    exe = chromium()
    if exe is None:
        pytest.skip("chromium not found on PATH (Debian: apt-get install -y chromium)")
    page = tmp_path / "checked.html"
    page.write_text(page_html.replace("<head>", "<head>" + CSP, 1)
                    .replace("</body>", CHECK + "</body>"))
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--use-gl=angle",
           "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--no-default-browser-check", "--disable-default-apps",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
           "--dump-dom", page.as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"data-check=\"([^\"]*)\"", p.stdout)
    assert m, "the page did not finish loading: " + p.stderr[-2000:]
    return json.loads(html.unescape(m.group(1)))


def test_report_opens_in_headless_chromium(report, tmp_path):
    """No request leaves the file, no script error, every image decodes, the parallel
    coordinates (one axis per searched parameter, status and objective) and the learning
    curves render, and the leaderboard sorts."""
    check = open_in_chromium(report.read_text(), tmp_path)
    assert check["errors"] == [] and check["requests"] == [] and check["broken"] == []
    assert check["images"] >= 13 and check["tables"] >= 6
    assert check["plots"] == 2
    assert check["parcoords"] == 5 + 2  # stages, scheduler, beta_schedule, iters, seed
    assert check["curves"] == 3  # completed, pruned, failed
    assert check["sorted"] == sorted(check["sorted"]) and len(check["sorted"]) == 12


def test_chromium_check_sees_a_request_leave(report, tmp_path):
    """The check itself: a page that loads an image from the network fails it."""
    leaky = report.read_text().replace(
        "</body>", "<img alt='leak' src='http://127.0.0.1:9/x.png'></body>")
    check = open_in_chromium(leaky, tmp_path)
    assert any("blocked http://127.0.0.1:9/x.png" in e for e in check["errors"])
