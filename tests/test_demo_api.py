"""The demo's public API (/generate, /interpolate) driven by gradio_client against `python app.py` on
loopback, plus its checks: friendly errors, bounds, notices, a Stage-I-only model (issue 6 §3, §6)."""

import warnings

import numpy as np
import pytest
from PIL import Image

from demo_server import BLOCKED, free_port, save_tiny_model, tiny_model_app

gradio_client = pytest.importorskip("gradio_client")
# Gradio's own queue statistics use pandas options that pandas 3 deprecates; not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
CAPTION = "a large red star on a white background"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with tiny_model_app(tmp_path_factory.mktemp("demo_api")) as app:
        yield app


@pytest.fixture(scope="module")
def client(server):
    client = gradio_client.Client(server.url, verbose=False, download_files=str(server.log.parent / "downloads"))
    yield client
    client.close()


def images(gallery):
    return [Image.open(item["image"]) for item in gallery]


def pixels(gallery):
    return np.stack([np.asarray(image) for image in images(gallery)])


def test_api_lists_exactly_generate_and_interpolate_with_stable_parameters(client):
    info = client.view_api(print_info=False, return_format="dict")
    endpoints = info["named_endpoints"]
    assert sorted(endpoints) == ["/generate", "/interpolate"]
    names = lambda endpoint: [p["parameter_name"] for p in endpoints[endpoint]["parameters"]]
    assert names("/generate") == ["caption", "num_images", "seed", "truncation", "ca_mode", "ca_scale"]
    assert names("/interpolate") == ["mode", "caption_a", "caption_b", "seed_a", "seed_b", "steps"]
    for endpoint in endpoints.values():
        assert [r["component"] for r in endpoint["returns"]] == ["Gallery", "Gallery"]


def test_generate_returns_png_stage1_64_and_stage2_256(client):
    stage1, stage2 = client.predict(CAPTION, 4, 0, 1.0, "sample", 1.0, api_name="/generate")
    assert len(stage1) == len(stage2) == 4
    for image in images(stage1):
        assert (image.format, image.size) == ("PNG", (64, 64))
    for image in images(stage2):
        assert (image.format, image.size) == ("PNG", (256, 256))


def test_generate_same_seed_same_pixels_other_seed_other_pixels(client):
    first = client.predict(CAPTION, 2, 7, 0.8, "mean", 0.5, api_name="/generate")
    again = client.predict(CAPTION, 2, 7, 0.8, "mean", 0.5, api_name="/generate")
    other = client.predict(CAPTION, 2, 8, 0.8, "mean", 0.5, api_name="/generate")
    assert np.array_equal(pixels(first[1]), pixels(again[1]))
    assert not np.array_equal(pixels(first[0]), pixels(other[0]))


@pytest.mark.parametrize("mode", ["caption", "seed"])
def test_interpolate_gives_k_steps_per_stage(client, mode):
    stage1, stage2 = client.predict(mode, CAPTION, "a small blue circle on a black background", 3, 4, 5,
                                    api_name="/interpolate")
    assert [image.size for image in images(stage1)] == [(64, 64)] * 5
    assert [image.size for image in images(stage2)] == [(256, 256)] * 5
    assert [item["caption"] for item in stage1] == ["t = 0.00", "t = 0.25", "t = 0.50", "t = 0.75", "t = 1.00"]


@pytest.mark.parametrize("caption", ["", "   \n"])
def test_blank_caption_gives_a_friendly_message_not_a_traceback(client, caption):
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        client.predict(caption, 4, 0, 1.0, "sample", 1.0, api_name="/generate")
    message = str(error.value)
    assert "caption is empty" in message and "for example" in message
    assert "Traceback" not in message


@pytest.mark.parametrize("args, expected", [
    ((0, 0), "minimum value 1"),
    ((9, 0), "maximum value 8"),
    ((2.5, 0), "Number of images must be a whole number from 1 to 8"),
    ((2, -1), "minimum value 0"),
    ((2, 2**31), "maximum value 2147483647"),
    ((2, 1.5), "Seed must be a whole number"),
])
def test_num_images_and_seed_are_validated_and_bounded(client, args, expected):
    with pytest.raises(gradio_client.exceptions.AppError, match=expected):
        client.predict(CAPTION, *args, 1.0, "sample", 1.0, api_name="/generate")


@pytest.mark.parametrize("args, expected", [
    (("sideways", "a", "b", 0, 1, 4), "not in the list of choices"),
    (("caption", "a", " ", 0, 1, 4), "Caption B is empty"),
    (("seed", "a", "", 0, 1, 1), "minimum value 2"),
    (("seed", "a", "", 0, 1, 13), "maximum value 12"),
])
def test_interpolate_inputs_are_validated(client, args, expected):
    with pytest.raises(gradio_client.exceptions.AppError, match=expected):
        client.predict(*args, api_name="/interpolate")


def test_overlong_caption_still_answers(client):
    stage1, stage2 = client.predict(" ".join(["a large red star"] * 100), 1, 0, 1.0, "sample", 1.0,
                                    api_name="/generate")
    assert len(stage1) == len(stage2) == 1


def test_server_survives_every_bad_request_and_never_touches_the_network(server, client):
    client.predict(CAPTION, 1, 0, 1.0, "sample", 1.0, api_name="/generate")
    assert server.alive()
    log = server.log_text()
    assert BLOCKED not in log
    # Gradio logs its components' bounds errors with a traceback; any other exception is a bug.
    for traceback in log.split("Traceback (most recent call last):")[1:]:
        last_line = [line for line in traceback.splitlines() if line and not line.startswith(" ")][0]
        assert last_line.startswith("gradio.exceptions.Error: "), traceback


# The same handlers in-process: notices, and a model without Stage-II.

@pytest.fixture(scope="module")
def stage1_only(tmp_path_factory):
    from stackgan import StackGANPipeline

    return StackGANPipeline.from_pretrained(save_tiny_model(tmp_path_factory.mktemp("stage1") / "m", stages=1))


def test_overlong_caption_is_truncated_with_a_notice(stage1_only):
    from demo.handlers import Handlers

    with pytest.warns(UserWarning, match="longer than the text encoder's limit of 256 tokens"):
        result = Handlers(stage1_only).generate(" ".join(["a large red star"] * 100), 1, 0)
    assert any("only its beginning was used" in note for note in result.notes)


def test_stage1_only_model_serves_an_empty_stage2_gallery_with_a_note(stage1_only):
    from demo import build_demo, launch
    from demo.handlers import Handlers

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a short caption gives no notice
        result = Handlers(stage1_only).generate(CAPTION, 2, 0)
    assert result.stage2 == [] and result.compare() is None
    assert result.notes == ["This model has no Stage-II, so only Stage-I images are shown."]

    demo = build_demo(stage1_only)
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(url, verbose=False)
        stage1, stage2 = client.predict(CAPTION, 3, 0, 1.0, "sample", 1.0, api_name="/generate")
        client.close()
        assert [image.size for image in images(stage1)] == [(64, 64)] * 3
        assert stage2 == []
    finally:
        demo.close()


def test_generation_works_in_a_forked_process_as_zerogpu_runs_it(stage1_only):
    import os
    import time

    from demo.handlers import Handlers

    handlers = Handlers(stage1_only)
    assert len(handlers.generate(CAPTION, 1, 0).stage1) == 1  # the parent's generation thread exists now
    pid = os.fork()
    if pid == 0:  # the child inherits the executor without its thread: it must start its own
        os._exit(0 if len(handlers.generate(CAPTION, 2, 1).stage1) == 2 else 1)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    if done[0] == 0:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0, "generation hung or failed in the child"
