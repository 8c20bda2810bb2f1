"""A real browser for the tests: Debian's chromium and chromium-driver, driven headless by Selenium.

When either is missing and the tests run as root on a system with apt-get, they are
installed through the system package manager (``apt-get install -y chromium
chromium-driver``); no browser is downloaded from anywhere else. Otherwise the tests that
need the browser are skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = ("chromium", "chromium-driver")
BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
_install_tried: list[str] = []  # the outcome of the one install attempt of this session


def _find(names) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isabs(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def _install() -> str | None:
    """Install the packages once per session; None when done, else why not."""
    if _install_tried:
        return _install_tried[0] or None
    reason = ""
    if shutil.which("apt-get") is None:
        reason = "no apt-get on this system"
    elif hasattr(os, "geteuid") and os.geteuid() != 0:
        reason = f"not root, so cannot run apt-get install -y {' '.join(PACKAGES)}"
    else:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
            if done.returncode != 0:  # the package lists may be missing or stale
                subprocess.run(["apt-get", "update"], check=False, capture_output=True, text=True, timeout=600, env=env)
                done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=900, env=env)
            if done.returncode != 0:
                tail = " ".join(done.stderr.split())[-300:]
                reason = f"apt-get install {' '.join(PACKAGES)} failed ({done.returncode}): {tail}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"apt-get install {' '.join(PACKAGES)} failed: {exc}"
    _install_tried.append(reason)
    return reason or None


def chromium_paths() -> tuple[str, str]:
    """(browser, driver), installing them when missing; pytest.skip with the reason when they cannot be had."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium; it is in the test extra)")
    browser, driver = _find(BROWSERS), _find(DRIVERS)
    if browser is None or driver is None:
        reason = _install()
        browser, driver = _find(BROWSERS), _find(DRIVERS)
        if browser is None or driver is None:
            pytest.skip(f"Chromium and its driver are not available: {reason or 'installed, but not found'}")
    return browser, driver


def make_driver(width: int = 1280, height: int = 1000):
    """A headless Chromium WebDriver that keeps the console's messages (``driver.get_log('browser')``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except Exception as exc:  # noqa: BLE001 (a browser that is there but does not start: no display libraries, ...)
        pytest.skip(f"Chromium ({browser}) did not start under Selenium: {' '.join(str(exc).split())[:300]}")


@pytest.fixture
def browser():
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """The console's errors and warnings about the page's own script since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") in ("SEVERE",)]


def screenshot(driver, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path
