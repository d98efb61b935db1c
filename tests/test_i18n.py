"""English and Simplified Chinese: the catalog is complete, the language follows the URL, the session and the
browser, figures and dates follow the language, and pages already translated show no English in Chinese.

The catalog check reads what the sources mark (``analytics.i18n.marked_texts``, Babel's extractor) and insists
each text has a translation that is not fuzzy and keeps its placeholders (an English plural ending aside). The
page check renders a page under AppTest in zh-CN and looks for English the catalog knows: a visible text that
is, or contains a run of words from, one of the catalog's English texts, is a text that was not translated (data
values such as product names are not in the catalog, so they are left alone).
"""

from __future__ import annotations

import re
import threading
from datetime import date

import pytest

from analytics import i18n
from analytics.filters import Filters
from analytics.i18n import _, code_label, format_day, language_of, read_catalog, using
from ui import format as fmt

#: Pages whose every text is translated: rendered in zh-CN and scanned for English (grows page by page).
TRANSLATED_PAGES: list[str] = [
    "pages/executive_kpis.py",  # kpis
    "pages/heatmaps.py",  # kpis
    "pages/campaign_targeting.py",  # targeting
    "pages/programme.py",  # targeting
    "pages/warehouse.py",  # data
    "pages/data_quality.py",  # data
    "pages/import_data.py",  # data
    "pages/predictions.py",  # models
    "pages/recommendations.py",  # models
    "pages/rfm_segments.py",  # segments
    "pages/member_tags.py",  # segments
    "pages/clusters.py",  # segments
    "pages/member_360.py",  # segments
    "pages/privacy_requests.py",  # shell
    "pages/audit_log.py",  # shell
    "pages/admin_users.py",  # shell
    "pages/funnels.py",  # marketing
    "pages/basket_rules.py",  # marketing
    "pages/experiments.py",  # marketing
    "pages/campaign_results.py",  # marketing
]
#: Words that read the same in Chinese UIs (abbreviations, names of methods and products).
ALLOWED = {"RFM", "KPI", "KPIs", "AOV", "GMV", "CLV", "ROI", "SKU", "App", "iOS", "SMS", "ID", "k-means", "MemberLens",
           "DuckDB", "PostgreSQL", "Spark", "SQL", "CSV", "JSON", "URL", "PIPL", "AUC", "ROC", "PR", "F1", "BG/NBD",
           "Gamma-Gamma", "pp", "k"}
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\(?\w*\)?[sd]")
#: Placeholders a translation may leave out: English plural endings (``member{s}``; Chinese has no plural).
OPTIONAL = {"{s}"}


def test_every_marked_text_is_translated_and_keeps_its_placeholders() -> None:
    catalog = read_catalog("zh_CN")
    problems = []
    for text, places in i18n.marked_texts().items():
        message = catalog.get(text)
        if message is None or not message.string:
            problems.append(f"untranslated: {text!r} ({places[0]})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {text!r} ({places[0]})")
        elif set(PLACEHOLDER.findall(message.string)) not in (wanted := set(PLACEHOLDER.findall(text)),
                                                                wanted - OPTIONAL):
            problems.append(f"placeholders differ: {text!r} -> {message.string!r}")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all; python -m analytics.i18n missing)"


def test_part_catalogs_agree_where_they_share_a_text() -> None:
    """Each part of the product keeps its own .po; a text two parts both translate must read the same in both
    (one term per idea, as docs/glossary.md lists them)."""
    from babel.messages.pofile import read_po

    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in i18n.catalog_files("zh_CN"):
        with po.open("rb") as handle:
            for message in read_po(handle, locale="zh_CN"):
                if not message.id or not message.string:
                    continue
                earlier = seen.setdefault(message.id, (message.string, po.name))
                if earlier[0] != message.string:
                    clashes.append(f"{message.id!r}: {earlier[0]!r} ({earlier[1]}) vs {message.string!r} ({po.name})")
    assert len(i18n.catalog_files("zh_CN")) >= 1 and not clashes, clashes


@pytest.mark.parametrize(("tag", "lang"), [("zh-CN", "zh_CN"), ("zh", "zh_CN"), ("zh-TW", "zh_CN"),
                                           ("zh_Hans_CN.UTF-8", "zh_CN"), ("en-GB", "en"), ("de-DE", "en"),
                                           (None, "en"), ("", "en")])
def test_language_tags(tag: str | None, lang: str) -> None:
    assert language_of(tag) == lang


def test_texts_figures_dates_and_codes_follow_the_language() -> None:
    with using("zh_CN"):
        assert (_("Executive KPIs"), code_label("mini_program"), code_label("gold")) == ("经营指标", "小程序", "金卡")
        assert (fmt.compact(12_345), fmt.compact(340_000_000), fmt.money(1234.5)) == ("1.2万", "3.4亿", "¥1,234.50")
        assert (fmt.share(0.123), fmt.label("live_stream")) == ("12.3%", "直播")
        assert format_day(date(2026, 11, 15)) == "2026年11月15日"
    with using("en"):
        assert (_("Executive KPIs"), code_label("mini_program"), code_label("gold")) == ("Executive KPIs",
                                                                                        "Mini program", "Gold")
        assert (fmt.compact(12_345), fmt.money(1234.5), fmt.money(12_345)) == ("12.3K", "¥1,234.50", "¥12.3K")
        assert format_day(date(2026, 11, 15)) == "15 Nov 2026"
    assert code_label("new_code") == "New code"  # a code the contract does not list reads as itself


def test_each_thread_keeps_its_own_language() -> None:
    """Streamlit runs each session in its own thread: one session's choice never reaches another's texts."""
    seen: dict[str, str] = {}
    ready = threading.Barrier(2)

    def session(lang: str) -> None:
        i18n.set_language(lang)
        ready.wait()  # both languages are set before either reads
        seen[lang] = _("Executive KPIs")

    threads = [threading.Thread(target=session, args=(lang,)) for lang in ("en", "zh_CN")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"en": "Executive KPIs", "zh_CN": "经营指标"}
    assert i18n.language() == "en"  # the test's own thread was never switched


# --- pages ---------------------------------------------------------------------------------------------------------

def english_texts() -> set[str]:
    """The catalog's English texts whose Chinese differs (a text translated as itself, such as "App", is fine),
    without what they quote (an example such as 'category=Pet Food' holds data, not UI English)."""
    return {re.sub(r"'[^']*'|`[^`]*`|\"[^\"]*\"", " ", m.id) for m in read_catalog("zh_CN")
            if m.id and m.string and m.string != m.id}


def visible_texts(at) -> list[str]:
    """What a reader sees on the page under AppTest: headings, texts, captions, labels and help, metrics, table
    headers and the charts' titles, axes, legends and hover texts."""
    import json

    texts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success"):
        texts += [str(el.value) for el in at.get(kind)]
    for el in at.metric:
        texts += [el.label, el.value, el.proto.help]
    for kind in ("button", "selectbox", "multiselect", "radio", "slider", "select_slider", "number_input",
                 "text_input", "date_input", "checkbox", "toggle", "button_group", "download_button", "tabs",
                 "expander"):
        for el in at.get(kind):
            proto = el.proto
            texts += [getattr(proto, "label", ""), getattr(proto, "help", "")]
            texts += [str(o) for o in getattr(proto, "options", [])]
    for el in at.dataframe:  # the headers shown: a column's configured label, else its name
        config = json.loads(el.proto.columns or "{}")
        order = list(el.proto.column_order) or [str(c) for c in el.value.columns]
        for column in order:
            setting = config.get(f"col:name:{column}", config.get(column, {}))
            if setting is not None and not setting.get("hidden"):
                texts.append(str(setting.get("label") or column))
    for el in at.get("plotly_chart"):
        figure = json.loads(el.proto.spec)
        layout = figure.get("layout", {})
        texts += [str(v) for v in _strings(layout, ("text",))]
        for trace in figure.get("data", []):
            texts += [str(trace.get("name") or ""), str(trace.get("hovertemplate") or "")]
    return [t for t in texts if t]


def _strings(node, keys: tuple[str, ...]) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += [value] if key in keys and isinstance(value, str) else _strings(value, keys)
    elif isinstance(node, list):
        for value in node:
            found += _strings(value, keys)
    return found


#: Not prose: HTML tags, Plotly placeholders, icons, code in backticks, identifiers (``members.member_id``,
#: ``churn_risk``).
CODE = re.compile(r"<[^>]+>|%\{[^}]*\}|:material/\w+:|`[^`]*`|\b\w+(?:[._]\w+)+\b")
#: A run of Latin words, numbers between them included (a campaign named "Double 12 Coupon 2025" is one run).
LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’\-/]*(?:[ ,.:]+(?:\d+[ ,.:]+)*[A-Za-z][A-Za-z'’\-/]*)*")


def english_left(texts: list[str], english: set[str]) -> list[str]:
    """The runs of Latin words on a Chinese page that are UI texts of the catalog: a whole English text, or a
    run of two or more words found inside one (the allow-listed abbreviations and names, and code: commands in
    backticks, identifiers such as ``members.member_id``, aside)."""
    left = []
    for text in texts:
        for run in LATIN_RUN.findall(re.sub(CODE, " ", text)):
            words = [w for w in re.split(r"[ ,.:]+", run) if w and not w.isdigit() and w not in ALLOWED]
            if not words:
                continue
            phrase = " ".join(words)
            if phrase in english or (len(words) >= 2 and any(phrase in e for e in english)):
                left.append(f"{run!r} in {text[:80]!r}")
    return left


def test_english_left_finds_untranslated_texts() -> None:
    """The page scan's detector on its own: UI English is found, data values and allowed names are not."""
    english = {"Net sales", "Members who bought in the period", "Orders"}
    assert english_left(["净销售额 Net sales", "Orders", "members who bought"], english) == [
        "'Net sales' in '净销售额 Net sales'", "'Orders' in 'Orders'"]
    assert english_left(["Mother & Baby", "RFM 分层", "App", "¥1.2万", "Double 12 Orders 2025"], english) == []


@pytest.mark.parametrize("page", TRANSLATED_PAGES)
def test_translated_page_shows_no_english_in_chinese(duck_warehouse, monkeypatch, page: str) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.query_params["lang"] = "zh-CN"
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    texts = visible_texts(at)
    assert any(re.search(r"[\u4e00-\u9fff]", t) for t in texts)
    assert not english_left(texts, english_texts()), english_left(texts, english_texts())[:30]


def test_language_comes_from_the_url_and_stays_with_the_session(duck_warehouse, monkeypatch) -> None:
    """?lang=zh-CN opens in Chinese and the URL keeps saying so after a page change; the sidebar switch changes
    the language at once and writes it into the URL."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import PROJECT_ROOT

    monkeypatch.setenv("MEMBERLENS_WAREHOUSE_URL", duck_warehouse.url)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.query_params["lang"] = "zh-CN"
    at.run()
    assert not at.exception
    assert at.session_state["memberlens_language"] == "zh_CN"
    assert "刷新数据" in [b.label for b in at.button]
    at.switch_page("pages/rfm_segments.py").run()
    assert at.session_state["memberlens_language"] == "zh_CN" and at.query_params["lang"] == "zh-CN"
    at.segmented_control(key="language_selector").set_value("en").run()
    assert at.query_params["lang"] == "en" and "Refresh data" in [b.label for b in at.button]


def test_member_files_carry_headers_in_the_readers_language() -> None:
    """A Chinese reader's member file has Chinese headers; an English one keeps the contract's column names, which
    scripts read."""
    import pandas as pd

    from analytics.exports import MemberExport, reader_headers

    export = MemberExport(pd.DataFrame({"member_id": ["P1"], "net_sales": [12.5], "tier": ["gold"]}), True)
    with using("zh_CN"):
        assert export.csv(reader_headers()).decode("utf-8").splitlines()[0] == "会员 ID,净销售额,等级"
    with using("en"):
        assert export.csv(reader_headers()).decode("utf-8").splitlines()[0] == "member_id,net_sales,tier"


def test_chart_dates_read_in_chinese() -> None:
    """Plotly writes month names in English; on a Chinese page the date axes of a chart are formatted in Chinese,
    other axes are left alone."""
    import pandas as pd
    import plotly.express as px

    from ui.look import CHINESE_DATE_FORMAT, localise_dates

    frame = pd.DataFrame({"day": pd.date_range("2026-11-01", periods=3), "sales": [1.0, 2.0, 3.0]})
    figure = localise_dates(px.line(frame, x="day", y="sales"))
    assert figure.layout.xaxis.tickformat == CHINESE_DATE_FORMAT and figure.layout.yaxis.tickformat is None
    bars = localise_dates(px.bar(frame.assign(day=["2026-11-01", "2026-11-02", "2026-11-03"]), y="day", x="sales"))
    assert bars.layout.yaxis.hoverformat == CHINESE_DATE_FORMAT and bars.layout.xaxis.tickformat is None


def test_audiences_read_in_the_readers_language_but_keep_one_definition() -> None:
    """An audience handed to Campaign targeting reads in Chinese for a Chinese reader, while its description (in
    its JSON, file names and the audit log) stays one English wording."""
    from analytics.rfm import RfmSegmentAudience

    audience = RfmSegmentAudience(Filters(date(2026, 1, 1), date(2026, 3, 31)), ("Champions", "At Risk"))
    with using("zh_CN"):
        assert audience.title() == "RFM 分层：重要价值客户, 流失风险客户"
        assert audience.describe() == "RFM segments Champions, At Risk"
        assert audience.to_json()["source"] == "RFM segments Champions, At Risk"
    with using("en"):
        assert audience.title() == audience.describe()
