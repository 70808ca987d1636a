"""The demo in a real browser (issue 6 §4): Debian's Chromium driven by Playwright opens the page,
types a caption, clicks Generate, and sees both galleries at the right sizes; saves a screenshot.

Needs /usr/bin/chromium (`bash .ci/install-browser`); never `playwright install` (DESIGN.md §6).
Set STACKGAN_SCREENSHOT_DIR to keep the screenshots, and STACKGAN_DEMO_MODEL to a model folder to
shoot a trained model instead of the random tiny one, e.g. for the README:

    STACKGAN_DEMO_MODEL=demo/pretrained/shapes STACKGAN_SCREENSHOT_DIR=docs/images \
        python -m pytest tests/test_demo_browser.py
"""

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from demo_server import BLOCKED, save_tiny_model, start_app

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: bash .ci/install-browser")
# Sizes of the images a gallery shows: [[naturalWidth, naturalHeight, drawn width, image-rendering], ...]
GALLERY_IMAGES = """id => [...document.querySelectorAll(`#${id} img`)]
    .filter(img => img.complete && img.naturalWidth > 0)
    .map(img => [img.naturalWidth, img.naturalHeight, img.getBoundingClientRect().width,
                 getComputedStyle(img).imageRendering])"""
TRAINING = {"steps": 1234, "metrics": {"fid": 99.5}}  # shown by the model panel of the tiny model


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    if folder := os.environ.get("STACKGAN_DEMO_MODEL"):
        return Path(folder).resolve()
    return save_tiny_model(tmp_path_factory.mktemp("demo_browser") / "model", training=TRAINING)


@pytest.fixture(scope="module")
def stages(model_folder):
    return json.loads((model_folder / "config.json").read_text()).get("stages", 2)


@pytest.fixture(scope="module")
def server(model_folder, tmp_path_factory):
    app = start_app(model_folder, tmp_path_factory.mktemp("demo_browser_log") / "app.log")
    yield app
    app.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(server.url)
    page.wait_for_selector("#caption textarea")
    yield page
    context.close()


def wait_for_images(page, gallery_id, count, timeout=60_000):
    page.wait_for_function(f"({GALLERY_IMAGES})('{gallery_id}').length >= {count}", timeout=timeout)
    return page.evaluate(GALLERY_IMAGES, gallery_id)


def keep_screenshot(path: Path) -> None:
    if folder := os.environ.get("STACKGAN_SCREENSHOT_DIR"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def test_type_caption_click_generate_both_galleries_show_images(page, server, stages, tmp_path):
    page.fill("#caption textarea", "a large red star on a white background")
    page.click("#generate")
    stage1 = wait_for_images(page, "stage1-gallery", 4)
    assert [(w, h) for w, h, _, _ in stage1] == [(64, 64)] * 4
    # Stage-I is drawn enlarged, with square pixels rather than a blur.
    assert all(drawn > 64 and rendering == "pixelated" for _, _, drawn, rendering in stage1)
    page.wait_for_selector("#status :text('4 image(s)')")
    if stages == 2:
        stage2 = wait_for_images(page, "stage2-gallery", 4)
        assert [(w, h) for w, h, _, _ in stage2] == [(256, 256)] * 4
        compare = wait_for_images(page, "compare", 2)
        assert sorted((w, h) for w, h, _, _ in compare) == [(256, 256), (256, 256)]
    else:
        assert page.evaluate(GALLERY_IMAGES, "stage2-gallery") == []
        assert "no Stage-II" in page.inner_text("#status")

    screenshot = tmp_path / "demo_generate.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert Image.open(screenshot).size[0] >= 1400
    keep_screenshot(screenshot)

    web = [urlparse(url) for url in page.requested]
    outside = {url.hostname for url in web if url.scheme in ("http", "https", "ws", "wss")}
    assert outside <= {"127.0.0.1"}, f"the page fetched from outside the server: {outside}"
    assert BLOCKED not in server.log_text()


def test_clicking_an_image_puts_it_in_the_compare_view(page, stages):
    if stages == 1:
        pytest.skip("a Stage-I-only model has no compare view")
    page.fill("#caption textarea", "a small blue circle in the top left corner on a black background")
    page.click("#generate")
    wait_for_images(page, "stage2-gallery", 4)
    wait_for_images(page, "compare", 2)
    sources = "() => [...document.querySelectorAll('#compare img')].map(img => img.src).join()"
    before = page.evaluate(sources)
    page.locator("#stage2-gallery img").nth(2).click()
    page.wait_for_function(f"({sources})() !== {before!r} && document.querySelectorAll('#compare img').length >= 2")


def test_blank_caption_shows_a_friendly_message(page):
    page.fill("#caption textarea", "   ")
    page.click("#generate")
    toast = page.get_by_text("The caption is empty", exact=False)
    toast.first.wait_for(timeout=30_000)
    assert "Traceback" not in page.inner_text("body")


def test_interpolation_tab_and_model_panel(page, model_folder, stages, tmp_path):
    page.get_by_role("tab", name="Interpolate").click()
    page.click("#interpolate")
    assert [(w, h) for w, h, _, _ in wait_for_images(page, "path-stage1", 8)] == [(64, 64)] * 8
    if stages == 2:
        assert [(w, h) for w, h, _, _ in wait_for_images(page, "path-stage2", 8)] == [(256, 256)] * 8
    screenshot = tmp_path / "demo_interpolate.png"
    page.screenshot(path=str(screenshot), full_page=True)
    keep_screenshot(screenshot)

    page.get_by_role("tab", name="Model").click()
    panel = page.inner_text("#model-panel")
    config = json.loads((model_folder / "config.json").read_text())
    assert config["config"]["preset"] in panel and config["config"]["text_encoder"] in panel
    if config.get("training") == TRAINING:
        assert "1234" in panel and "99.5" in panel
