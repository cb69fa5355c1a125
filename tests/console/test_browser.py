"""A real headless Chromium (Debian's ``chromium``, driven by Playwright) using the console served by uvicorn.

It logs in, opens a round, reviews two decisions from the queue and finds the
verdicts in ``qf.labels``; every page is screenshotted and the screenshot
checked for content. Requests anywhere but the console are refused and
counted, so the pages are shown to work with no internet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Route, sync_playwright

from qf_sentinel.qf.db import connect
from tests.console.conftest import REVIEWER_TOKEN, ServedConsole
from tests.console.hostile import LINK_NAME
from tests.ops.test_compose import healthcheck_command, run_check


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail("Chromium is needed (Debian package 'chromium'); `make test` installs it "
                    "(scripts/ensure_chromium.sh)")
    return found


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Chromium's sandbox needs user namespaces, which a root CI container lacks.
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=args)
        yield browser
        browser.close()


class Visit:
    """One browser tab on the console, recording script errors and any request that tried to leave."""

    def __init__(self, browser: Browser, base: str, shots: Path) -> None:
        self.base, self.shots = base, shots
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.route("**/*", self._only_the_console)

    def _only_the_console(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1" or route.request.url.startswith("data:"):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert_not_blank(path)
        return path


def assert_not_blank(path: Path) -> None:
    """A page with content: many colours, and a fair share of pixels that are not the background."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    assert len(pixels) >= 400 * 300, f"{path.name} is tiny"
    values, counts = np.unique(pixels, axis=0, return_counts=True)
    background_share = counts.max() / len(pixels)
    assert len(values) > 50, f"{path.name} has only {len(values)} colours"
    assert background_share < 0.97, f"{path.name} is {background_share:.1%} one colour"


def test_a_reviewer_logs_in_opens_a_round_and_reviews_two_decisions(
    chromium: Browser, served_console: ServedConsole, tmp_path: Path
) -> None:
    visit = Visit(chromium, served_console.url, tmp_path)
    page, r = visit.page, served_console.round

    page.goto(served_console.url + "/review")
    assert page.url.startswith(served_console.url + "/login?next=/review")
    visit.screenshot("login")
    page.fill("input[name=token]", REVIEWER_TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url(served_console.url + "/review")

    page.click("nav >> text=Rounds")
    assert page.locator("h1").inner_text() == "Rounds"
    visit.screenshot("rounds")
    page.click(f'a[href="/rounds/{r.pool_id}"]')
    page.wait_for_selector('[data-figure][data-drawn="true"]')
    assert page.locator("[data-figure] .main-svg").count() > 0, "plotly drew the gains chart"
    assert page.locator("table tbody tr").count() > 5
    visit.screenshot("round")

    page.click("nav >> text=Flagged donors")
    assert page.locator("tr.donor").count() > 10
    visit.screenshot("donors")

    page.click("nav >> text=Review queue")
    forms = page.locator("form.verdict")
    pending = forms.count()
    assert pending >= 2
    visit.screenshot("review")
    reviewed = []
    for choice, comment in (("sybil", "same funder as its cluster"), ("honest", "long history, varied projects")):
        form = page.locator("form.verdict").first
        donor = form.locator("input[name=donor]").get_attribute("value")
        assert donor is not None
        form.locator(f"input[name=verdict][value={choice}]").check()
        form.locator("input[name=comment]").fill(comment)
        form.locator("button[type=submit]").click()
        page.wait_for_selector(".flash")
        assert f"Recorded: {donor} is {choice}" in page.locator(".flash").inner_text()
        reviewed.append((donor, choice, comment))
    assert page.locator("form.verdict").count() == pending - 2
    visit.screenshot("review-after")

    with connect(r.db_url) as conn:
        for donor, choice, comment in reviewed:
            label = conn.execute(
                "SELECT is_sybil, pattern FROM qf.labels WHERE address = %s AND source = 'alice'",
                (bytes.fromhex(donor[2:]),),
            ).fetchone()
            assert label == (choice == "sybil", "reviewed_sybil" if choice == "sybil" else "honest")
            log = conn.execute("SELECT verdict, comment FROM qf.review_log WHERE donor = %s",
                               (bytes.fromhex(donor[2:]),)).fetchall()  # fmt: skip
            assert log == [(choice, comment)]

    page.click("text=Reviewed")
    page.click(f'a[href="/donors/{reviewed[0][0]}"]')
    assert "same funder as its cluster" in page.locator("main").inner_text()
    visit.screenshot("donor")

    page.click("nav >> text=Experiments")
    page.wait_for_selector('[data-figure][data-drawn="true"]')
    visit.screenshot("experiments")
    page.click("nav >> text=Model")
    # The page is there once the click returns; its plot may still be loading on a busy machine: wait for it.
    page.wait_for_function(
        "() => { const img = document.querySelector(\"img[src^='/model/plots/']\");"
        " return img !== null && img.complete && img.naturalWidth > 0; }"
    )
    visit.screenshot("model")

    assert visit.errors == [], "no script error on any page"
    assert visit.outside == [], "nothing loaded from outside the console"


def test_the_compose_health_check_passes_on_a_live_console(served_console: ServedConsole) -> None:
    """docker-compose.yml's check of the console service, run here against the served console."""
    port = served_console.url.rsplit(":", 1)[1]
    assert run_check(healthcheck_command("console"), "127.0.0.1:8088", f"127.0.0.1:{port}") == 0
    assert run_check(healthcheck_command("console"), "127.0.0.1:8088", "127.0.0.1:9") != 0


#: Where a word of the page is drawn: the left edge of its first occurrence in ``selector``'s text.
_WORD_LEFT = """([selector, word]) => {
  const root = document.querySelector(selector);
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.textContent.indexOf(word);
    if (at >= 0) {
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + word.length);
      return range.getBoundingClientRect().left;
    }
  }
  return null;
}"""


def test_hostile_names_render_as_plain_text(chromium: Browser, served_console: ServedConsole, tmp_path: Path) -> None:
    """Names written on chain by an attacker: the chart shows markup as literal text and makes no link, an
    unterminated RIGHT-TO-LEFT OVERRIDE does not reverse what follows it, a 100 kB name keeps the page small."""
    visit = Visit(chromium, served_console.url, tmp_path)
    page, r = visit.page, served_console.round
    page.goto(served_console.url + "/login")
    page.fill("input[name=token]", REVIEWER_TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url(served_console.url + "/")

    assert page.evaluate(_WORD_LEFT, ["main table", "Operator"]) is not None
    page.goto(f"{served_console.url}/rounds/{r.pool_id}")
    page.wait_for_selector('[data-figure][data-drawn="true"]')
    visit.screenshot("round-hostile")

    # Plotly: no <a> in the drawn chart, the markup is shown as the characters it is made of, nothing giant.
    assert page.locator("[data-figure] svg a").count() == 0
    ticks = page.locator("[data-figure] .ytick text").all_text_contents()
    assert LINK_NAME in ticks
    assert any(t.startswith('<span style="font-size:300px">HUGE</span>') for t in ticks)
    heights = page.locator("[data-figure] .ytick text").evaluate_all("els => els.map(e => e.getBBox().height)")
    assert max(heights) < 40, f"a tick label {max(heights)} px tall"

    # The header paragraph reads left to right after the operator's name: "donors" before "donations".
    donors = page.evaluate(_WORD_LEFT, ["main p", "donors,"])
    donations = page.evaluate(_WORD_LEFT, ["main p", "donations,"])
    assert donors is not None
    assert donations is not None
    assert donors < donations, f"'donors,' drawn at x={donors}, 'donations,' at x={donations}: reversed"

    # The 100 kB name: cut to 80 characters in the table, the page stays small.
    cell = page.locator("main table td bdi", has_text="Long name Long name").first
    assert len(cell.inner_text()) <= 80
    assert cell.get_attribute("title") is not None
    size = page.evaluate("document.documentElement.outerHTML.length")
    assert size < 150_000, f"the round page is {size:,} characters"
    assert visit.errors == []
    assert visit.outside == []


def test_a_refusal_page_links_back_to_this_site_only(chromium: Browser, served_console: ServedConsole,
                                                     tmp_path: Path) -> None:  # fmt: skip
    """A form altered to carry back=/\\evil.example: Chromium would read that as http://evil.example/."""
    visit = Visit(chromium, served_console.url, tmp_path)
    page, r = visit.page, served_console.round
    page.goto(served_console.url + "/login")
    page.fill("input[name=token]", REVIEWER_TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url(served_console.url + "/")
    page.goto(f"{served_console.url}/donors/{r.flagged[-1]}")
    form = page.locator("form.verdict").first
    form.locator("input[name=back]").evaluate("el => { el.value = '/\\\\evil.example'; }")
    form.locator("input[name=comment]").evaluate("el => { el.removeAttribute('maxlength'); }")
    form.locator("input[name=comment]").fill("x" * 2001)
    form.locator("input[name=verdict][value=sybil]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("p.error")
    assert "at most 2,000" in page.locator("p.error").inner_text()
    href = page.locator("a", has_text="Back").evaluate("a => a.href")
    assert href.startswith(served_console.url + "/"), href
    assert visit.outside == []
