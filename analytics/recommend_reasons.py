"""Recommendation reasons in words: the structured reason of every recommended item (kind, the past product and
the day it was bought, the segment) with a plain English sentence, for a page, an export or a campaign message.

Kinds (:data:`analytics.recommend_lists.REASON_KINDS`) and their sentences:

* ``bought_with``: "Often bought together with Coffee Machine X, which you bought on 3 Oct 2026."
* ``similar_taste`` (ALS): "Members who bought what you bought also bought this; it is closest to X, which you
  bought on 3 Oct 2026."
* ``buy_again``: "You bought this on 3 Oct 2026; time to buy it again?"
* ``category`` / ``subcategory`` / ``brand``: "Popular in Beauty, a category you often buy."
* ``segment``: "Popular with gold members in East China who joined through social media."
* ``overall``: "One of the shop's best sellers lately."; ``popular_personal``: "Popular with members who buy
  what you buy." (a personal score with no single past product behind it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd

from analytics.i18n import DEFAULT_LANGUAGE, _, code_label, format_day, language
from analytics.recommend_data import SEGMENT_ATTRIBUTES, RecommendData, from_day_number
from analytics.recommend_lists import REASON_KINDS, SOURCES, UNKNOWN_CATEGORY, ListSettingsError, Recommendations
from analytics.recommend_models import PopularModel, Recommender


def segment_words(popular: PopularModel, row: int) -> str:
    """'gold members in East China who joined through social media'; 'members' for the overall segment."""
    key = popular.segment_keys_[row]
    labels = popular.segment_labels_
    value = {attr: (labels[a][key[a]] if key[a] >= 0 else None) for a, attr in enumerate(SEGMENT_ATTRIBUTES)}
    words = f"{value['tier']} members" if value["tier"] else "members"
    if value["region"]:
        words += f" in {value['region']}"
    if value["acquisition_channel"]:
        words += f" who joined through {value['acquisition_channel'].replace('_', ' ')}"
    return words


#: :func:`segment_words`' English, read back: the words lists store, reworded in the reader's language.
_SEGMENT_WORDS = re.compile(r"^(?:(?P<tier>\S+) )?members(?: in (?P<region>.+?))?"
                            r"(?: who joined through (?P<channel>.+))?$")


def segment_phrase(words: str) -> str:
    """:func:`segment_words`' English (as made now or stored with a version's lists) in the run's language:
    ``gold members in 华东 who joined through social media`` -> ``通过社交媒体加入的华东金卡会员``. Tiers and channels
    are codes (labelled), regions data (as stored)."""
    found = _SEGMENT_WORDS.match(words) if language() != DEFAULT_LANGUAGE else None
    if found is None:
        return words
    tier, region, channel = found.group("tier"), found.group("region"), found.group("channel")
    template = (_("{tier} members in {region} who joined through {channel}") if region and channel else
                _("{tier} members in {region}") if region else
                _("{tier} members who joined through {channel}") if channel else _("{tier} members"))
    phrase = template.format(tier=code_label(tier) if tier else "", region=region,
                             channel=code_label(channel.replace(" ", "_")) if channel else "")
    phrase = " ".join(phrase.split()).replace("会员会员", "会员")  # 普通会员 (basic) is already "members"
    return _CJK_LATIN.sub(" ", phrase)  # a space between Chinese and Latin words (a region or channel as stored)


_CJK_LATIN = re.compile(r"(?<=[\u4e00-\u9fff])(?=[A-Za-z0-9])|(?<=[A-Za-z0-9])(?=[\u4e00-\u9fff])")


EXPLAIN_COLUMNS = ["member_id", "rank", "product_id", "product", "category", "score", "source", "kind",
                   "because_product_id", "because_product", "because_date", "segment", "reason"]
#: What a sentence depends on, per reason kind (other inputs are ignored, so equal sentences are made once).
_SENTENCE_INPUTS: dict[str, tuple[str, ...]] = {
    "bought_with": ("because_product", "because_date"), "similar_taste": ("because_product", "because_date"),
    "buy_again": ("because_date",), "category": ("category",), "subcategory": ("subcategory",), "brand": ("brand",),
    "segment": ("segment",), "popular_personal": (), "overall": ()}
SENTENCE_COLUMNS: tuple[str, ...] = ("kind", "because_product", "because_date", "category", "subcategory", "brand",
                                     "segment")


def _sentence(kind: str, because_product: str | None, because_date: date | None, category: str | None,
              subcategory: str | None, brand: str | None, segment: str | None) -> str:
    name = because_product
    when = format_day(because_date) if because_date is not None else None  # 3 Oct 2026 / 2026年10月3日
    if kind == "bought_with":
        return _("Often bought together with {product}, which you bought on {day}.").format(product=name, day=when)
    if kind == "similar_taste":
        return _("Members who bought what you bought also bought this; it is closest to {product}, which you bought "
                 "on {day}.").format(product=name, day=when)
    if kind == "buy_again":
        return _("You bought this on {day}; time to buy it again?").format(day=when)
    if kind == "category":
        return _("Popular in {category}, a category you often buy.").format(category=category or _("its kind"))
    if kind == "subcategory":
        return _("Popular in {subcategory}, which you often buy.").format(subcategory=subcategory or _("its kind"))
    if kind == "brand":
        return _("Popular from {brand}, a brand you buy.").format(brand=brand or _("its kind"))
    if kind == "segment":
        return _("Popular with {segment}.").format(segment=segment_phrase(segment) if segment else segment)
    if kind == "popular_personal":
        return _("Popular with members who buy what you buy.")
    return _("One of the shop's best sellers lately.")


def reason_sentences(reasons: pd.DataFrame) -> pd.Series:
    """The sentence of each row of ``reasons`` (columns :data:`SENTENCE_COLUMNS`: the reason kind, the past product's
    name and the day it was bought, the recommended product's category, subcategory and brand, the segment in
    words; None where not known). Each distinct sentence is written once, so a million rows cost the distinct
    reasons, not the rows: a page, an export and a stored list all say the same words."""
    if reasons.empty:
        return pd.Series([], index=reasons.index, dtype=object)
    kind = reasons["kind"].to_numpy(dtype=object)
    key = np.zeros(len(reasons), dtype=np.int64)
    columns = {"kind": kind}
    for column in SENTENCE_COLUMNS:
        values = reasons[column].to_numpy(dtype=object) if column != "kind" else kind
        if column != "kind":
            users = [k for k, inputs in _SENTENCE_INPUTS.items() if column in inputs]
            values = np.where(np.isin(kind, users), values, None)
            columns[column] = values
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        # mixed radix, renumbered after each column so it never overflows: one integer per distinct input tuple
        key = pd.factorize(key * (len(uniques) + 1) + (codes + 1))[0].astype(np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    texts = np.array([_sentence(*(None if pd.isna(columns[c][i]) else columns[c][i] for c in SENTENCE_COLUMNS))
                      for i in first.tolist()], dtype=object)
    return pd.Series(texts[inverse.ravel()], index=reasons.index, dtype=object)


def day_dates(days: np.ndarray) -> np.ndarray:
    """Day numbers as ``date`` objects (None for negative numbers), each distinct day converted once."""
    days = np.asarray(days)
    unique, inverse = np.unique(days, return_inverse=True)
    table = np.array([from_day_number(d) if d >= 0 else None for d in unique.tolist()] + [None], dtype=object)
    return table[inverse.ravel()] if days.size else np.empty(0, dtype=object)


def explain(recs: Recommendations, model: Recommender, data: RecommendData, members: Sequence[int] | None = None,
            max_rows: int = 2_000_000) -> pd.DataFrame:
    """One row per recommended item of the given members (member codes; default all; at most ``max_rows``
    rows), with the structured reason (kind, the past product and its date, the segment) and a sentence."""
    index = np.arange(recs.members.size) if members is None else \
        pd.Index(recs.members).get_indexer(pd.Index(np.asarray(members, dtype=np.int64)))
    if (index < 0).any():
        raise ListSettingsError("Some of the members asked about have no list here.")
    rows, ranks = np.nonzero(recs.items[index] >= 0)
    if rows.size > max_rows:
        raise ListSettingsError(f"That is {rows.size:,} rows; explain at most {max_rows:,} at once.")
    at = index[rows]
    products = data.products
    item = recs.items[at, ranks]
    kind = np.asarray(REASON_KINDS, dtype=object)[recs.kind[at, ranks]]
    because = recs.because_item[at, ranks]
    day = recs.because_day[at, ranks]
    known = (because >= 0) & (day >= 0)
    segment_rows = recs.segment[at]
    segment_text = {s: segment_words(model.popular, s) for s in np.unique(segment_rows).tolist()}
    segments = np.where(kind == "segment", pd.Series(segment_rows).map(segment_text).to_numpy(dtype=object), None)
    dates = day_dates(np.where(known, day, -1))

    def names(codes: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
        table = np.asarray((*labels, None), dtype=object)
        return table[np.where(codes >= 0, codes, len(labels))]

    because_name = np.where(because >= 0, products.names[np.maximum(because, 0)], None)
    category = products.category[item]
    frame = pd.DataFrame({
        "member_id": data.members.ids[recs.members[at]],
        "rank": ranks + 1,
        "product_id": products.ids[item],
        "product": products.names[item],
        "category": np.where(category >= 0, names(category, products.categories), UNKNOWN_CATEGORY),
        "score": recs.scores[at, ranks],
        "source": np.asarray(SOURCES, dtype=object)[recs.source[at, ranks]],
        "kind": kind,
        "because_product_id": np.where(because >= 0, products.ids[np.maximum(because, 0)], None),
        "because_product": because_name,
        "because_date": dates,
        "segment": segments,
    })
    frame["reason"] = reason_sentences(frame.assign(
        category=names(category, products.categories), subcategory=names(products.subcategory[item],
                                                                         products.subcategories),
        brand=names(products.brand[item], products.brands)))
    return frame[EXPLAIN_COLUMNS]
