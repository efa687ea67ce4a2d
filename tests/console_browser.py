"""A real browser on the operator console: Debian's Chromium, headless, driven by Selenium through
chromium-driver (apt: chromium chromium-driver; scripts/bootstrap.sh installs them as root).
Pointer input goes through Chromium's own input pipeline (WebDriver actions): the page sees real
pointerdown / pointermove / pointerup events, as from a mouse."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (scripts/bootstrap.sh installs them as root: "
           "apt-get install chromium chromium-driver)")


class ConsolePage:
    """One browser window on the console."""

    def __init__(self, url: str, width: int = 1280, height: int = 800) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         f"--window-size={width},{height}"):
            options.add_argument(argument)
        options.binary_location = CHROMIUM
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.get(url)
        self.canvas = self.driver.find_element("id", "camera")
        self._holding = False

    def close(self) -> None:
        self.driver.quit()

    def __enter__(self) -> "ConsolePage":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- what the page shows -------------------------------------------------------------------
    def js(self, script: str):
        return self.driver.execute_script(script)

    def state(self) -> dict | None:
        return self.js("return state")

    def seat(self) -> str:
        return self.driver.find_element("id", "seat").text

    def frames_drawn(self) -> tuple[int, int]:
        """(width, height) of the camera canvas, (0, 0) before the first frame."""
        return tuple(self.js("return lastFrame ? [lastFrame.width, lastFrame.height] : [0, 0]"))

    def canvas_pixels(self) -> np.ndarray:
        """The camera canvas's pixels as drawn (RGBA), read back from the page."""
        data = self.js("const c = document.getElementById('camera');"
                       "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)")
        width, height = self.frames_drawn()
        return np.asarray(data, dtype=np.uint8).reshape(height, width, 4)

    def screenshot(self, path: Path) -> None:
        self.driver.save_screenshot(str(path))

    # -- operator input ------------------------------------------------------------------------
    def _offset(self, uv: tuple[float, float]) -> tuple[int, int]:
        """Camera-image pixel -> WebDriver offset from the canvas's border-box centre (CSS px)."""
        box = self.js("const c = document.getElementById('camera'); const r = c.getBoundingClientRect();"
                      "return [r.width, r.height, c.clientLeft, c.clientTop, c.clientWidth, c.clientHeight,"
                      " c.width, c.height]")
        width, height, left, top, inner_w, inner_h, image_w, image_h = box
        x = left + uv[0] * inner_w / image_w    # the page: u = (x - clientLeft) * width / clientWidth
        y = top + uv[1] * inner_h / image_h
        return int(round(x - width / 2)), int(round(y - height / 2))

    def pointer_sent(self) -> tuple[float, float] | None:
        """The image pixel the page last sent for the held pointer (None: released)."""
        held = self.js("return held")
        return None if held is None else (float(held[0]), float(held[1]))

    def point(self, uv: tuple[float, float] | None) -> None:
        """Hold the left button at image pixel ``uv`` (moving there if already held); None lets go."""
        from selenium.webdriver.common.action_chains import ActionChains
        actions = ActionChains(self.driver, duration=0)
        if uv is None:
            if self._holding:
                actions.release().perform()
                self._holding = False
            return
        actions.move_to_element_with_offset(self.canvas, *self._offset(uv))
        if not self._holding:
            actions.click_and_hold()
        actions.perform()
        self._holding = True

    def click_at(self, uv: tuple[float, float]) -> None:
        from selenium.webdriver.common.action_chains import ActionChains
        ActionChains(self.driver, duration=0).move_to_element_with_offset(self.canvas, *self._offset(uv)).click().perform()

    def press(self, action: str, timeout: float = 30.0) -> None:
        """Click the page's button for ``action`` (start, stop, discard, success, next_scene, estop...)
        once it is enabled, as an operator would: the page greys a button until its node is discovered."""
        button = self.driver.find_element("css selector", f'button[data-action="{action}"]')
        self.wait(button.is_enabled, timeout, f"the {action} button enabled")
        button.click()

    def messages(self) -> list[str]:
        """The page's message log, newest first (replies and refusals of the buttons)."""
        return self.js("return logLines.slice()")

    def send_raw(self, message: object) -> None:
        """Send a message on the page's own WebSocket, as a misbehaving page would."""
        self.js(f"ws.send({json.dumps(json.dumps(message) if not isinstance(message, str) else message)})")

    def freeze(self) -> None:
        """Freeze the page as a sleeping laptop does: its timers stop, its WebSocket stays open."""
        self.driver.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})

    def wait(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"browser: {what} not within {timeout} s")
            time.sleep(0.05)
