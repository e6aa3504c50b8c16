"""index.html in a real headless browser: loads without console errors, sorting reorders rows, filters hide cells.

Needs Chromium + chromedriver from the distribution (Debian: ``apt-get install chromium chromium-driver``) and the
``selenium`` package; skips cleanly without them. The screenshot goes to ``$REGBENCH_TEST_ARTIFACTS`` (CI uploads
that folder) or the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from leaderboard_synth import make_record, write

from regbench.harness.leaderboard import build_leaderboard

webdriver = pytest.importorskip("selenium.webdriver")
BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (BROWSER and DRIVER), reason="no Chromium/chromedriver on PATH")


@pytest.fixture
def page(tmp_path: Path) -> Path:
    scores = {"std": 0.70, "better": 0.75, "worse": 0.60}
    for task, offset in (("sst2", 0.0), ("trec", 0.05)):  # families glue and sentence_cls
        for noise in (0.0, 0.2):
            for seed in (1, 2, 3):
                for method, score in scores.items():
                    value = score + offset - noise + 0.001 * seed * (1 if method != "worse" else -1)
                    write(tmp_path / "records", make_record(task, method, seed, value, noise=noise))
    build_leaderboard(tmp_path / "records", tmp_path / "out", "synth")
    return tmp_path / "out" / "index.html"


@pytest.fixture
def driver():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield chrome
    chrome.quit()


def _methods(table) -> list[str]:
    return [row.find_elements("tag name", "td")[0].text for row in table.find_elements("css selector", "tbody tr")]


def test_page_sorts_filters_and_has_no_console_errors(page: Path, driver, tmp_path: Path) -> None:
    from selenium.webdriver.support.select import Select

    driver.get(page.as_uri())
    table = driver.find_element("id", "main-k16-clean")
    assert _methods(table) == ["std", "better", "worse"]
    header = table.find_elements("css selector", "thead th")[1]  # the sst2 column
    header.click()
    assert _methods(table) == ["worse", "std", "better"]  # ascending by score
    header.click()
    assert _methods(table) == ["better", "std", "worse"]

    noise = Select(driver.find_element("css selector", "select[name=noise]"))
    noise.select_by_value("clean")
    assert table.is_displayed()
    assert not driver.find_element("id", "main-k16-symmetric-0-2").is_displayed()
    detail = driver.find_element("id", "detail-k16-clean")
    family = Select(driver.find_element("css selector", "select[name=family]"))
    family.select_by_value("glue")
    visible = [r.find_elements("tag name", "td")[0].text for r in detail.find_elements("css selector", "tbody tr")
               if r.is_displayed()]
    assert visible and set(visible) == {"sst2"}
    headers = [h.text for h in table.find_elements("css selector", "thead th") if h.is_displayed()]
    assert "sst2" in headers and "trec" not in headers

    artifacts = Path(os.environ.get("REGBENCH_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(artifacts / "leaderboard-page.png"))
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
