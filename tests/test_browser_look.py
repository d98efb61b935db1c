"""Look and accessibility in Chromium: every text a page draws meets WCAG AA contrast (4.5:1 against what is behind
it) and is at least 11 px, on pages with every kind of chart (lines, bars, heatmaps, treemaps, networks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_browser import browser, start_app, wait_until_idle  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.browser

PAGES = ["", "rfm_segments", "clusters", "heatmaps", "funnels", "basket_rules", "experiments", "programme",
         "campaign_results", "data_quality"]

#: Every visible text node with its colour, the first opaque background behind it and its size. Texts drawn on a
#: chart's shapes (values inside bars or cells, whose background is the shape, not the page) are left out: their
#: colour is chosen against the shape by Plotly), and a slider's value, drawn above its thumb but inside it in the DOM.
TEXTS = """() => {
  const out = []; const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const text = node.textContent.trim(); const e = node.parentElement;
    const onShape = '.bartext-inside, .heatmap-label, .slicetext, .treemap, .sunburst, [aria-hidden="true"], '
      + '[data-testid="stSliderThumbValue"]';
    if (!text || !e || e.closest(onShape)) continue;
    const box = e.getBoundingClientRect(); const style = getComputedStyle(e);
    if (box.width === 0 || box.height === 0 || style.visibility === 'hidden' || style.opacity === '0') continue;
    let bg = null; let x = e;
    while (x && x.nodeType === 1) {
      const c = getComputedStyle(x).backgroundColor;
      if (c && c !== 'transparent' && !c.endsWith(', 0)')) { bg = c; break; }
      x = x.parentElement;
    }
    const svg = e instanceof SVGElement;
    out.push({text: text.slice(0, 40), color: svg ? style.fill : style.color, bg: bg || 'rgb(255, 255, 255)',
              size: parseFloat(style.fontSize)});
  }
  return out;
}"""


def _rgba(css: str) -> tuple[float, float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", css)]
    return (*numbers[:3], numbers[3] if len(numbers) > 3 else 1.0)  # type: ignore[return-value]


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(v: float) -> float:
        v /= 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(color: str, background: str) -> float:
    """WCAG contrast of a (possibly translucent) text colour over a background, both laid over white."""
    def over(rgba: tuple[float, float, float, float], base: tuple[float, float, float]) -> tuple[float, float, float]:
        a = rgba[3]
        return tuple(rgba[i] * a + base[i] * (1 - a) for i in range(3))  # type: ignore[return-value]

    back = over(_rgba(background), (255.0, 255.0, 255.0))
    front = over(_rgba(color), back)
    high, low = sorted((_luminance(front), _luminance(back)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_formula_matches_wcag_examples() -> None:
    assert contrast("rgb(0, 0, 0)", "rgb(255, 255, 255)") == pytest.approx(21.0)
    assert contrast("rgb(128, 132, 149)", "rgb(255, 255, 255)") == pytest.approx(3.72, abs=0.01)
    assert contrast("rgba(31, 27, 36, 0.6)", "rgb(246, 244, 247)") < 4.5


#: True once the style sheet ``app.py`` draws on every run (``ui.look``) is in the page.
STYLE_LOADED = """() => [...document.querySelectorAll('style')]
  .some(s => s.textContent.includes('stCaptionContainer'))"""


def _unreadable(page, path: str) -> list[tuple[str, str, float, float]]:
    texts = page.evaluate(TEXTS)
    assert len(texts) > 20, path
    found = []
    for item in texts:
        ratio = contrast(item["color"], item["bg"])
        if ratio < 4.5 or item["size"] < 11:
            found.append((path or "kpis", item["text"], round(ratio, 2), item["size"]))
    return found


def test_every_text_is_readable(browser, duck_warehouse, tmp_path: Path) -> None:  # noqa: F811
    process, base = start_app({"MEMBERLENS_WAREHOUSE_URL": duck_warehouse.url,
                               "MEMBERLENS_STATE_URL": f"sqlite:///{tmp_path}/state.sqlite"}, tmp_path / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        problems = []
        for path in PAGES:
            page.goto(f"{base}/{path}")
            wait_until_idle(page)
            page.wait_for_function(STYLE_LOADED, timeout=30_000)  # the app's style sheet is in the page
            found = _unreadable(page, path)
            if found:  # measured again once the page has settled (a loaded machine may still be drawing it)
                page.wait_for_timeout(2_000)
                wait_until_idle(page)
                found = _unreadable(page, path)
            problems += found
        assert not problems, f"{len(problems)} texts below 4.5:1 or 11 px, e.g. {problems[:10]}"
    finally:
        process.terminate()
        process.wait(timeout=20)
