"""`sinter report`: one self-contained HTML page of a real run, rendered in headless Chromium."""

import base64
import io
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
from matplotlib.image import imread

from solver.cli import main

from conftest import CASES

PNG_DATA = "data:image/png;base64,"
PAGE_WINDOW = (1200, 9000)  # px, width and height


def chromium_screenshot(page, screenshot, window):
    """The pixels (RGB in [0, 1]) of headless Chromium's screenshot of a page."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={screenshot}",
             f"--window-size={window[0]},{window[1]}", page.as_uri()],
            capture_output=True, timeout=120, check=True)
    return imread(screenshot)[..., :3]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run of the shipped recurved cell (about 5 s)."""
    out = tmp_path_factory.mktemp("report") / "recurved-2d"
    assert main(["run", str(CASES / "recurved-2d.toml"), "--out", str(out), "-q"]) == 0
    return out


class PageParts(HTMLParser):
    """The elements of a page with their attributes, and the text of its <style>."""

    def __init__(self, page: str):
        super().__init__()
        self.elements, self.style, self._in_style = [], "", False
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.style += data


def images_of_self_contained(page: str) -> list:
    """The pictures of a page that fetches nothing: decoded from its data URIs."""
    parts = PageParts(page)
    tags = {tag for tag, _ in parts.elements}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base"}, tags
    assert "url(" not in parts.style and "@import" not in parts.style
    pictures = []
    for tag, attributes in parts.elements:
        for name in ("href", "src", "srcset", "action", "formaction", "poster", "data"):
            if name not in attributes:
                continue
            assert (tag, name) == ("img", "src"), f"<{tag} {name}=...>: a reference"
            assert attributes["src"].startswith(PNG_DATA), attributes["src"][:40]
            png = base64.b64decode(attributes["src"][len(PNG_DATA):], validate=True)
            pictures.append(imread(io.BytesIO(png)))
    return pictures


def test_report_of_a_run_without_views(result):
    assert main(["report", str(result), "-q"]) == 0
    page = (result / "report.html").read_text()
    summary = json.loads((result / "summary.json").read_text())
    pictures = images_of_self_contained(page)
    assert len(pictures) == 2  # the interface profiles and kinetics.png
    assert all(picture.shape[0] > 300 and picture.shape[1] > 400 for picture in pictures)
    assert f"<h1>{summary['case']}</h1>" in page
    conditions = len(summary["process_window"]) + len(summary["delamination"])
    assert page.count('<span class="pass">pass</span>') == conditions == 5
    assert f"All {conditions} conditions that apply pass." in page
    assert "FAIL" not in page
    # the von Mises maxima as `sinter run` prints them: the stress field's per material, with
    # where it is, and the largest cell average
    assert "393.2 MPa at (2.24, 0.12) um" in page and "358.2 MPa" in page
    # every value with its unit: the conditions' (a temperature in degC), the geometry's
    assert "400.0 degC</td><td class=\"number\">664.2 degC" in page.replace(
        '<td class="number">400.0 degC', "400.0 degC")
    assert "geometry: Ra</td><td class=\"number\">1.378 um" in page
    # the copper's stress beyond its flow stress, and the run's provenance
    assert '<div class="warning">' in page and "copper is elastic" in page
    assert summary["git_commit"][:12] in page and summary["timestamp"] in page
    assert "No pictures yet" in page
    assert 'neck_width = "1.4 um"' in page  # the inputs, verbatim


def test_report_of_a_run_without_fields(tmp_path):
    """A run that wrote no fields ([output] fields = []): the page has everything else and
    says why there are no pictures of the fields."""
    case = tmp_path / "recurved-2d.toml"
    case.write_text((CASES / "recurved-2d.toml").read_text()
                    + '\n[solver]\ntemperature_increment = "375 K"\n[output]\nfields = []\n')
    assert main(["run", str(case), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert main(["report", str(tmp_path / "run"), "-q"]) == 0
    page = (tmp_path / "run" / "report.html").read_text()
    assert len(images_of_self_contained(page)) == 2  # the interface profiles and kinetics
    assert "No pictures of the fields: it wrote no fields.xdmf" in page


def test_report_marks_a_failed_condition(result, tmp_path):
    failed = tmp_path / "failed"
    failed.mkdir()
    for name in ("summary.json", "case.toml", "interface.csv"):
        shutil.copy(result / name, failed / name)
    summary = json.loads((failed / "summary.json").read_text())
    summary["process_window"][1].update({"pass": None, "verdict": "n/a"})
    summary["delamination"][0].update({"value": 1.02, "pass": False, "verdict": "fail"})
    (failed / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(failed), "-q"]) == 0
    page = (failed / "report.html").read_text()
    assert page.count('<span class="fail">FAIL</span>') == 1
    assert page.count('<span class="na">n/a (does not apply)</span>') == 1
    assert ("1 of 4 conditions FAIL: no delamination at interface_copper_mix (largest risk "
            "index over the schedule below 1).</span> (1 do not apply to this case)") in page


def test_report_needs_a_result(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("sinter: error: ") and "no summary.json" in error
    assert len(error.splitlines()) == 1


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not on the PATH")
def test_report_with_views_renders_in_chromium(result, tmp_path):
    with_views = shutil.which("pvbatch") is not None
    if with_views:
        assert main(["view", str(result), "-q"]) == 0
    assert main(["report", str(result), "-q"]) == 0
    page = (result / "report.html").read_text()
    assert len(images_of_self_contained(page)) == 4 if with_views else 2

    # A window taller than the page, so that the screenshot holds all of it wherever the
    # sections above (warnings, tables) push the pictures.
    pixels = chromium_screenshot(result / "report.html", tmp_path / "report.png",
                                 PAGE_WINDOW)
    assert pixels.shape[:2] == PAGE_WINDOW[::-1]
    assert pixels.std() > 0.05, "a blank page"
    assert (pixels[-100:] == 1.0).all(), "the page is longer than the window"
    # black text on white has no colour; the plots and the stress pictures do: 720,000
    # coloured pixels with the two stress pictures, 18,000 (the line plots) without them
    # (recurved-2d, measured)
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    coloured = int((saturation > 0.3).sum())
    assert coloured > (300_000 if with_views else 10_000), coloured
