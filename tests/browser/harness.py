"""Drive a viser viewer from headless Chromium (playwright sync API) in tests.

Debian's /usr/bin/chromium is used (never `playwright install`); without it the fixtures skip.
WebGL works with ``--disable-gpu``: Chromium falls back to SwiftShader (ANGLE on Vulkan, CPU), so
the three.js canvas, and the background image streamed with ``scene.set_background_image``, are
drawn and show up in screenshots.

Typical use (see test_harness.py)::

    with chromium_context() as ctx:
        page = ctx.pages[0]
        wait_for_viser(page, url)
        set_text_input(page, "Prompt", "a chair")
        rgb = canvas_pixels(page)                      # HxWx3 uint8 of the 3D canvas
        click_canvas(page, 0.25, 0.5)                  # -> scene.on_click, screen_pos ~ (0.25, 0.5)
        path = expect_download(page, lambda: click_button(page, "Export"), dest_dir=tmp_path)
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1000, "height": 700}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",  # WebGL still works: SwiftShader software rendering
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The three.js canvas of the viser client (a second, 0x0 overlay canvas has no data-engine).
CANVAS = "canvas[data-engine]"
DEFAULT_TIMEOUT = 20.0  # seconds
# viser's client (1.1, ControlPanel/Generated.tsx) sends every GUI input's updates through ONE
# sender throttled to 50 ms that keeps only the latest message: a second widget changed inside the
# window waits, and a third replaces it, so the second never reaches the server. A person cannot
# change three widgets in 50 ms; a script can, so each GUI action below waits this long after it.
GUI_SEND_SPACING_MS = 50 + 40  # viser's throttle plus timer slack

# While screenshotting the canvas, hide every DOM overlay (control panel, notifications, ...):
# `visibility` is inherited but a descendant may turn itself visible again.
_ONLY_CANVAS_CSS = f"body * {{ visibility: hidden !important; }} {CANVAS} {{ visibility: visible !important; }}"


def chromium_available() -> bool:
    if not os.access(CHROMIUM, os.X_OK):
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def skip_reason() -> str:
    return f"{CHROMIUM} or the playwright package is absent (bash scripts/test.sh installs both)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chromium_context(
    user_data_dir: str | os.PathLike | None = None,
    *,
    extra_args: Sequence[str] = (),
    viewport: dict | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[playwright.sync_api.BrowserContext]:  # noqa: F821
    """Launch headless Chromium with a fresh profile; yields a persistent BrowserContext.

    `ctx.pages[0]` is an open blank page; `ctx.new_page()` opens more (each page that loads the
    viewer is a separate viser client). Calls `pytest.skip` when Chromium is missing.
    """
    if not chromium_available():
        import pytest

        pytest.skip(skip_reason())
    from playwright.sync_api import sync_playwright

    own_dir = user_data_dir is None
    profile = Path(tempfile.mkdtemp(prefix="ovseg-chromium-")) if own_dir else Path(user_data_dir)
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=CHROMIUM,
                headless=True,
                accept_downloads=True,
                viewport=viewport or VIEWPORT,
                args=[*CHROMIUM_ARGS, *extra_args],
            )
            ctx.set_default_timeout(timeout * 1000)
            try:
                if not ctx.pages:
                    ctx.new_page()
                yield ctx
            finally:
                ctx.close()
    finally:
        if own_dir:
            shutil.rmtree(profile, ignore_errors=True)


def wait_until(
    predicate: Callable[[], object],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
    what: str = "condition",
    page=None,
    on_timeout: Callable[[], str] | None = None,
):
    """Poll `predicate` until it returns a "done" value (returned) or raise TimeoutError.

    Done means truthy; a numpy array (e.g. from `canvas_pixels`) counts as done whatever its values.

    Pass `page` when waiting for server-side effects of browser actions: polling then goes through
    `page.wait_for_timeout`, which keeps playwright's event loop (downloads, console) running.
    `on_timeout` says what was seen instead (added to the error).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, np.ndarray) or value:
            return value
        if time.monotonic() > deadline:
            seen = f" ({on_timeout()})" if on_timeout is not None else ""
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}{seen}")
        if page is not None:
            page.wait_for_timeout(interval * 1000)
        else:
            time.sleep(interval)


def wait_for_viser(page, url: str, *, ready_text: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Open `url` and wait until the viser client is connected, the GUI panel is rendered and the
    3D canvas has faded in.

    Connection is detected by the control panel's "Connected" title; a viewer that sets its own
    panel title (`configure_theme(titlebar_content=...)`/label) should pass `ready_text`, some text
    of a GUI element that only a connected client shows (e.g. a button label).
    """
    ms = timeout * 1000
    # A page that is not the front tab gets no requestAnimationFrame ticks, so the canvas neither
    # fades in nor redraws there; the canvas helpers below bring their page to the front as well.
    page.bring_to_front()
    page.goto(url, timeout=ms)
    if ready_text is None:
        page.get_by_text("Connected", exact=True).first.wait_for(state="visible", timeout=ms)
    else:
        page.get_by_text(ready_text, exact=True).first.wait_for(state="visible", timeout=ms)
    page.locator(CANVAS).wait_for(state="visible", timeout=ms)
    # The canvas fades in (style opacity 0.05 -> 1 over ~0.8 s) after the connection is made.
    page.wait_for_function(
        f"() => {{ const c = document.querySelector('{CANVAS}');"
        " return c && parseFloat(getComputedStyle(c).opacity) >= 0.999 && c.width > 0; }",
        polling=50,  # ms; the default (requestAnimationFrame) stalls in background tabs
        timeout=ms,
    )


def _input_after_label(page, label: str):
    # viser renders `<label>` next to (not wrapping or `for`-linked to) its input, so
    # get_by_label does not work; take the first visible text-like control after the label.
    return page.locator(
        f"xpath=//label[normalize-space()={_xpath_literal(label)}]"
        "/following::*[self::input[not(@type='hidden')] or self::textarea][1]"
    )


def _xpath_literal(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in s.split("'")) + ")"


def set_text_input(page, label: str, text: str, *, submit: bool = True) -> None:
    """Replace the value of the text input labelled `label` with `text`.

    viser sends the value on every input event (fill() makes one), so the server's `on_update`
    fires with the full text; Enter + blur is pressed as well for viewers that act on submit.
    """
    box = _input_after_label(page, label)
    box.fill(text)
    if submit:
        box.press("Enter")
        box.blur()
    _let_viser_send(page)


def _let_viser_send(page) -> None:
    page.wait_for_timeout(GUI_SEND_SPACING_MS)


def click_button(page, text: str) -> None:
    """Click the GUI button whose visible text is exactly `text`."""
    page.get_by_role("button", name=text, exact=True).click()
    _let_viser_send(page)


def click_label(page, text: str) -> None:
    """Click the GUI element whose visible text is exactly `text` (a checkbox's label, a folder)."""
    page.get_by_text(text, exact=True).first.click()
    _let_viser_send(page)


def set_slider(page, label: str, value: float) -> None:
    """Set a viser slider through the number box viser shows next to it."""
    set_text_input(page, label, str(value))


def select_dropdown(page, label: str, option: str) -> None:
    """Pick `option` in the viser dropdown (a Mantine Select) labelled `label`."""
    _input_after_label(page, label).click()
    page.get_by_role("option", name=option, exact=True).click()
    _let_viser_send(page)


def close_notifications(page, timeout: float = 5.0) -> None:
    """Close the toasts viser shows (e.g. "Software WebGL rendering detected", top-left, which
    swallows canvas clicks under it; download links, top-left too)."""
    buttons = page.locator(".mantine-Notification-closeButton")
    deadline = time.monotonic() + timeout
    while buttons.count():
        if time.monotonic() > deadline:
            raise TimeoutError("notifications did not close")
        with contextlib.suppress(Exception):
            buttons.first.click(timeout=1000)
        page.wait_for_timeout(30)


def _canvas_box(page) -> dict:
    page.bring_to_front()
    box = page.locator(CANVAS).bounding_box()
    if box is None:
        raise RuntimeError("viser canvas is not rendered (call wait_for_viser first)")
    return box


def canvas_pixels(page, *, hide_overlays: bool = True) -> np.ndarray:
    """HxWx3 uint8 screenshot of the 3D canvas area (CSS pixels; the canvas spans the viewport).

    With `hide_overlays` the DOM on top of the canvas (control panel, notifications) is hidden
    for the shot (also the viser logo button in the bottom-left corner); what remains is what
    WebGL drew: the background image and scene objects.
    """
    import imageio.v3 as iio

    box = _canvas_box(page)
    # Let the (possibly just fronted) page draw a frame or two first.
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    png = page.screenshot(
        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]},
        style=_ONLY_CANVAS_CSS if hide_overlays else None,
        animations="disabled",
    )
    img = iio.imread(io.BytesIO(png), extension=".png")
    return np.ascontiguousarray(img[..., :3])


def click_canvas(page, x_frac: float, y_frac: float, modifiers: Sequence[str] = ()) -> tuple[float, float]:
    """Click at a fraction of the canvas (0,0 top-left, 1,1 bottom-right) so `scene.on_click` fires.

    `modifiers`: playwright key names held during the click, e.g. ("Shift",), ("Control",) -- viser
    matches them against the `modifier=` filter of `on_click` ("shift", "cmd/ctrl", ...).
    Returns the page coordinates clicked. viser reports `screen_pos = ((px + 0.5) / W, (py + 0.5) / H)`
    for canvas-local pixel (px, py). Raises if a DOM overlay (e.g. the control panel) covers the point,
    because then the click would never reach the canvas.
    """
    box = _canvas_box(page)
    x = box["x"] + x_frac * box["width"]
    y = box["y"] + y_frac * box["height"]
    hit = page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y);"
        " return e ? (e.matches('canvas[data-engine]') ? '' : e.outerHTML.slice(0, 120)) : 'nothing'; }",
        [x, y],
    )
    if hit:
        raise RuntimeError(f"point ({x_frac}, {y_frac}) of the canvas is covered by {hit!r}")
    for key in modifiers:
        page.keyboard.down(key)
    try:
        page.mouse.click(x, y)
    finally:
        for key in reversed(modifiers):
            page.keyboard.up(key)
    return x, y


def expect_download(
    page, action: Callable[[], object], *, dest_dir: str | os.PathLike | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Path:
    """Run `action` and return the path of the file the viewer sends with `send_file_download`.

    viser's default (`save_immediately=False`) does not download: it shows a notification holding an
    `<a download>` link, which this helper clicks; with `save_immediately=True` the browser downloads
    at once. Either way the file is saved as `dest_dir/<filename>` (a fresh temp dir by default).
    """
    page.evaluate("() => document.querySelectorAll('a[download]').forEach(a => a.dataset.harnessSeen = '1')")
    got: list = []

    def on_download(download) -> None:  # a plain function: playwright tags handlers with attributes
        got.append(download)

    page.on("download", on_download)
    try:
        action()
        deadline = time.monotonic() + timeout
        while not got:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no download within {timeout:.1f} s")
            link = page.locator("a[download]:not([data-harness-seen])")
            if link.count():
                handle = link.first.element_handle()
                handle.evaluate("a => { a.dataset.harnessSeen = '1'; }")
                handle.click()
            page.wait_for_timeout(30)
    finally:
        page.remove_listener("download", on_download)
    download = got[0]
    if download.failure():
        raise RuntimeError(f"download failed: {download.failure()}")
    dest = Path(dest_dir) if dest_dir is not None else Path(tempfile.mkdtemp(prefix="ovseg-download-"))
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / download.suggested_filename
    download.save_as(path)
    return path


def screenshot(page, path: str | os.PathLike, *, full_page: bool = False) -> Path:
    """Save a PNG of the page (overlays included) to `path`, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=full_page)
    return path
