"""``wan-analyze view``: the self-contained page and the --serve page, in a real headless Chromium.

The browser tests skip (with the reason) where Chromium and its driver cannot be had;
see tests/browser.py. The page's data checks and the escaping checks need no browser.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import zarr
from browser import browser, console_errors, screenshot  # noqa: F401 (browser is a fixture)
from click.testing import CliRunner
from synthetic_store import Synthetic, small_spec, write_store

from analyzer.commands.view import view_command
from analyzer.viewer import write_viewer
from analyzer.viewer.data import build_page_data
from analyzer.viewer.page import render_page, script_json
from shared import schema

REPO = Path(__file__).resolve().parent.parent
DEMO_SCREENSHOT = REPO / "examples" / "demo" / "viewer.png"
HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT_BREAK = "</script><script>window.__pwned=1</script>"
# "A cat walks on the grass, under a cloudy sky." as the demo's tokenizer splits it
DEMO_TOKENS = ["\u2581A", "\u2581cat", "\u2581walks", "\u2581on", "\u2581the", "\u2581grass", ",", "\u2581under",
               "\u2581a", "\u2581cloud", "y", "\u2581sky", ".", "</s>"]


def demo_spec() -> Synthetic:
    """A store shaped like ``make demo``'s: 8 steps, latent grid 5 x 6 x 10 (17 frames of 96 x 160), both branches.

    The owner of each location moves with the step, so every step's maps differ.
    """
    steps, grid = 8, (5, 6, 10)
    f, y, x = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")
    content = [1, 2, 5, 9, 10, 11]  # cat, walks, grass, cloud, y, sky
    owners = np.stack([np.asarray(content)[(x // 3 + y // 2 + f + s) % len(content)] for s in range(steps)])
    return Synthetic(owners=owners, tokens=list(DEMO_TOKENS), layer_blocks=(0, 1), own=(0.5, 0.7),
                     branches=(schema.BRANCH_COND, schema.BRANCH_UNCOND),
                     prompt="A cat walks on the grass, under a cloudy sky.")


def write_demo_store(path: Path) -> Path:
    """The demo-shaped store, with a video that moves (a gradient and a square crossing it)."""
    write_store(path, demo_spec())
    root = zarr.open_group(str(path), mode="r+")
    video = root[schema.VIDEO.path]
    n, height, width, _ = video.shape
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(n):
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[..., 0] = (xx * 255 // width).astype(np.uint8)
        frame[..., 1] = (yy * 255 // height).astype(np.uint8)
        frame[..., 2] = 90
        left = i * (width - 32) // max(n - 1, 1)
        frame[height // 3: height // 3 + 32, left:left + 32] = (240, 240, 240)
        video[i] = frame
    return path


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    return write_demo_store(tmp_path_factory.mktemp("viewer") / "demo.zarr")


# ---- without a browser ----

def test_script_json_cannot_close_its_script_element():
    value = {"token": SCRIPT_BREAK + HOSTILE + "<!-- & \u2028"}
    text = script_json(value)
    assert not re.search(r"[<>&\u2028]", text)
    assert json.loads(text) == value


def test_hostile_title_and_data_stay_text_in_the_html():
    page = render_page({"mode": "inline", "x": SCRIPT_BREAK}, "t " + HOSTILE + " __JS__ __DATA__")
    head = page.split("<style>", 1)[0]
    assert "<img" not in head and "&lt;img src=x onerror=alert(1)&gt;" in head
    assert page.count("</script>") == 2  # the data block's and the script's own: nothing from the data
    assert "window.__pwned" in page and "<script>window.__pwned" not in page


def test_page_data_is_bounded_and_says_what_it_reduced(tmp_path):
    store = write_demo_store(tmp_path / "s.zarr")
    full = build_page_data(store)
    assert {k.split("|", 1)[1] for k in full.slices if k.startswith("cond|")} == (
        {f"{s}|{layer}" for s in ["mean", *range(8)] for layer in ["mean", 0, 1]})
    assert full.meta["reductions"] == ["maps: 8 bits per value, each map scaled to its own maximum"]
    small = tmp_path / "small.html"
    write_viewer(store, small, budget_bytes=200_000)
    data = build_page_data(store, budget_bytes=200_000)
    assert small.stat().st_size < 200_000 * 1.1
    assert any(r.startswith("steps:") for r in data.meta["reductions"])
    assert "cond|mean|mean" in data.slices
    kept = [k for k in data.slices if k.startswith("cond|") and k.endswith("|mean") and "|mean|" not in k]
    assert 0 < len(kept) < 8


def _page_json(html_path: Path) -> dict:
    found = re.search(r'<script[^>]*application/json[^>]*>(.*?)</script>', html_path.read_text(encoding="utf-8"), re.S)
    return json.loads(found.group(1))


@pytest.mark.parametrize("options", [{}, {"steps": "1,3"}, {"layers": "1"}, {"branch": "uncond"}])
def test_the_analysis_page_equals_the_view_command_page(tmp_path, options):
    """Inside wan-analyze the pass hands its layer means to the page (when it covers every step and layer of
    its branch); otherwise the page reads the store itself. Either way: the page ``wan-analyze view`` writes."""
    from analyzer.run import analyze

    store = write_demo_store(tmp_path / "s.zarr")
    written = analyze(store, tmp_path / "out", outputs="viewer", **options)
    assert _page_json(written["viewer"]) == json.loads(script_json(build_page_data(store).as_json_object()))


def test_quantised_maps_match_the_store(tmp_path):
    import base64

    store = tmp_path / "s.zarr"
    written = write_store(store, small_spec())
    data = build_page_data(store)
    att = written["attention"].astype(np.float32)  # (steps, layers, F, H, W, T)
    cats = att[1, :, ..., 2:4].sum(axis=-1).mean(axis=0).reshape(-1)  # word "cats" (tokens 2, 3), step 1
    got = data.slices["cond|1|mean"]
    q = np.frombuffer(base64.b64decode(got["maps"][2]), dtype=np.uint8)
    np.testing.assert_allclose(q / 255.0 * got["scales"][2], cats, atol=got["scales"][2] / 255)
    # the segmentation: "cats" owns every location at step 1; "red" frames 0-1 of the mean over the steps
    winners = np.frombuffer(base64.b64decode(got["winners"]), dtype="<u2")
    assert (winners == 2).all()
    mean = np.frombuffer(base64.b64decode(data.slices["cond|mean|mean"]["winners"]), dtype="<u2").reshape(4, 4, 6)
    assert (mean[:2] == 1).all() and (mean[2] == 2).all() and (mean[3] == 0).all()


def test_view_command_refuses_to_overwrite(tmp_path, demo_store):
    out = tmp_path / "viewer.html"
    first = CliRunner().invoke(view_command, [str(demo_store), "-o", str(out)])
    assert first.exit_code == 0, first.output
    assert "wrote" in first.output and out.stat().st_size > 0
    again = CliRunner().invoke(view_command, [str(demo_store), "-o", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output and len(again.output.strip().splitlines()) == 1
    assert CliRunner().invoke(view_command, [str(demo_store), "-o", str(out), "--overwrite"]).exit_code == 0
    missing = CliRunner().invoke(view_command, [str(tmp_path / "nothing.zarr"), "-o", str(tmp_path / "x.html")])
    assert missing.exit_code != 0 and len(missing.output.strip().splitlines()) == 1


# ---- in the browser ----

def _wait(driver, condition, timeout=10.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def _draws(driver) -> int:
    return driver.execute_script("return window.__drawCount || 0")


def _after_draw(driver, action) -> float:
    """Do ``action``, wait for the page to draw, return how long the draw took (ms, measured in the page)."""
    before = _draws(driver)
    action()
    _wait(driver, lambda d: _draws(d) > before)
    return driver.execute_script("return window.__lastDrawMs")


def _canvas(driver, element_id="overlay") -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').toDataURL()")


def open_viewer(driver, url: str):
    driver.get(url)
    _wait(driver, lambda d: _draws(d) >= 1, timeout=30)


def check_viewer(driver, expected_words: list[str], *, timed: bool) -> dict:
    """The checks the inline and served pages share; returns the draw times."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    assert driver.title == "wan-attention viewer: A cat walks on the grass, under a cloudy sky."
    cond = driver.find_elements(By.CSS_SELECTOR, "#words button[data-branch='cond']")
    assert [b.text for b in cond] == expected_words
    assert driver.find_elements(By.CSS_SELECTOR, "#words button[data-branch='uncond']")

    times = {"word": [], "step": []}
    overlay = _canvas(driver)
    times["word"].append(_after_draw(driver, cond[5].click))  # "grass"
    assert "selected" in cond[5].get_attribute("class")
    assert _canvas(driver) != overlay, "the overlay did not change with the word"
    assert driver.find_element(By.ID, "word-label").text == "word: grass"

    step = Select(driver.find_element(By.ID, "step"))
    label, overlay, segmentation = (driver.find_element(By.ID, "step-label").text, _canvas(driver),
                                    _canvas(driver, "segmentation"))
    times["step"].append(_after_draw(driver, lambda: step.select_by_index(3)))  # step 2
    new_label = driver.find_element(By.ID, "step-label").text
    assert new_label != label and new_label.startswith("step 2 ")
    assert _canvas(driver) != overlay, "the overlay did not change with the step"
    assert _canvas(driver, "segmentation") != segmentation
    # the keyboard: down is the next step, right the next frame
    body = driver.find_element(By.TAG_NAME, "body")
    times["step"].append(_after_draw(driver, lambda: driver.execute_script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowDown', bubbles: true}))")))
    assert driver.find_element(By.ID, "step-label").text.startswith("step 3 ")
    assert body is not None
    _after_draw(driver, lambda: driver.execute_script(
        "document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}))"))
    assert driver.find_element(By.ID, "frame-label").text.startswith("frame 1 / 16")
    # the layer selector, and a word of the negative prompt
    layer = Select(driver.find_element(By.ID, "layer"))
    assert [o.text for o in layer.options][:1] == ["mean over layers"] and len(layer.options) == 3
    times["step"].append(_after_draw(driver, lambda: layer.select_by_index(2)))
    uncond = driver.find_elements(By.CSS_SELECTOR, "#words button[data-branch='uncond']")
    times["word"].append(_after_draw(driver, uncond[1].click))
    assert driver.find_element(By.ID, "word-label").text == "word: cat (negative prompt)"
    for i in (2, 9, 11):
        times["word"].append(_after_draw(driver, cond[i].click))
    for i in (0, 5, 8):
        times["step"].append(_after_draw(driver, lambda i=i: step.select_by_index(i)))
    if timed:
        assert max(times["word"] + times["step"]) < 100, times
    assert driver.execute_script("return window.__errors") == []
    errors = console_errors(driver)
    assert errors == [], errors
    return times


DEMO_WORDS = ["A", "cat", "walks", "on", "the", "grass", ",", "under", "a", "cloudy", "sky", ".", "</s>"]


def save_demo_screenshot(driver, path: Path = DEMO_SCREENSHOT) -> Path:
    """The README's picture of the viewer, from a page of the demo-shaped store (call it on nothing else)."""
    return screenshot(driver, path)


def test_viewer_file_in_chromium(browser, demo_store, tmp_path):  # noqa: F811 (the fixture)
    out = write_viewer(demo_store, tmp_path / "viewer.html")
    size = out.stat().st_size
    print(f"\nviewer of the demo-shaped store: {size} bytes")
    open_viewer(browser, out.as_uri())
    times = check_viewer(browser, DEMO_WORDS, timed=True)
    print(f"draw times (ms): {times}")
    # the picture: a content word, a middle step, the video half-way
    from selenium.webdriver.support.ui import Select

    _after_draw(browser, browser.find_elements("css selector", "#words button[data-branch='cond']")[1].click)
    _after_draw(browser, lambda: Select(browser.find_element("id", "layer")).select_by_index(0))
    _after_draw(browser, lambda: Select(browser.find_element("id", "step")).select_by_index(5))
    _after_draw(browser, lambda: browser.execute_script(
        "const s = document.getElementById('frame-slider'); s.value = '8';"
        "s.dispatchEvent(new Event('input', {bubbles: true}))"))
    assert console_errors(browser) == []
    shot = screenshot(browser, tmp_path / "viewer.png")
    assert shot.stat().st_size > 10_000
    if os.environ.get("WAN_UPDATE_PICTURES") or not DEMO_SCREENSHOT.exists():
        DEMO_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DEMO_SCREENSHOT)


def test_hostile_tokens_stay_text(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    store = tmp_path / "hostile.zarr"
    tokens = ["\u2581a", "\u2581" + HOSTILE, "\u2581" + SCRIPT_BREAK, "\u2581&amp;", ".", "</s>"]
    write_store(store, small_spec(tokens=tokens, prompt="a " + HOSTILE + " " + SCRIPT_BREAK,
                                  attributes={"seed": HOSTILE, "negative_prompt": SCRIPT_BREAK}))
    out = write_viewer(store, tmp_path / "hostile.html")
    open_viewer(browser, out.as_uri())
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('img[onerror], script:not([type])').length") == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "img")) == 1  # the video frame's, nothing else
    texts = [b.get_attribute("textContent") for b in browser.find_elements(By.CSS_SELECTOR, "#words button")]
    assert HOSTILE in texts and SCRIPT_BREAK in texts and "&amp;" in texts
    assert HOSTILE in browser.title and SCRIPT_BREAK in browser.title
    assert HOSTILE in browser.find_element(By.ID, "meta").text
    assert console_errors(browser) == []


@pytest.fixture
def served(demo_store):
    from analyzer.viewer.serve import make_server

    server = make_server(demo_store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_served_viewer_in_chromium(browser, served):  # noqa: F811
    open_viewer(browser, served)
    check_viewer(browser, DEMO_WORDS, timed=False)
    assert "every step and layer" in browser.find_element("id", "status").text


def test_server_answers_only_loopback_names(served):
    with urllib.request.urlopen(served + "api/meta") as r:
        meta = json.loads(r.read())
    assert meta["grid"] == [5, 6, 10] and meta["available"] is None
    with urllib.request.urlopen(served + "api/slice?branch=cond&step=3&layer=1") as r:
        assert len(json.loads(r.read())["maps"]) == len(DEMO_WORDS)
    request = urllib.request.Request(served + "api/meta", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(served + "api/slice?branch=nope&step=0&layer=mean")
    assert caught.value.code == 404


@pytest.fixture(scope="module")
def recorded_store(tiny_model_dir, tmp_path_factory) -> Path:
    """A store the real recorder wrote (tiny random-weight model, 6 steps) with both branches."""
    from interrupted_runs import start

    out = tmp_path_factory.mktemp("recorded") / "run.zarr"
    proc = start(tiny_model_dir, out, "never", 0, extra=("--negative-prompt", "blurry <b>x</b>", "--branch", "both"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return out


def test_viewer_of_a_recorded_store(browser, recorded_store, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    out = write_viewer(recorded_store, tmp_path / "recorded.html")
    open_viewer(browser, out.as_uri())
    assert browser.title == "wan-attention viewer: a cat on the grass"
    negative = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#words button[data-branch='uncond']")]
    assert "<b>x</b>" in "".join(negative) or any("<" in w for w in negative)
    before = _canvas(browser)
    words = browser.find_elements(By.CSS_SELECTOR, "#words button[data-branch='cond']")
    _after_draw(browser, words[1].click)
    assert _canvas(browser) != before
    assert browser.execute_script("return window.__errors") == []
    assert console_errors(browser) == []
