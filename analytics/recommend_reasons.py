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

from collections.abc import Sequence

import numpy as np
import pandas as pd

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


def _day_words(day_no: int) -> str:
    day = from_day_number(day_no)
    return f"{day.day} {day:%b %Y}"


EXPLAIN_COLUMNS = ["member_id", "rank", "product_id", "product", "category", "score", "source", "kind",
                   "because_product_id", "because_product", "because_date", "segment", "reason"]


def explain(recs: Recommendations, model: Recommender, data: RecommendData, members: Sequence[int] | None = None,
            max_rows: int = 200_000) -> pd.DataFrame:
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
    kind = recs.kind[at, ranks]
    because = recs.because_item[at, ranks]
    day = recs.because_day[at, ranks]
    segment_text = {s: segment_words(model.popular, s) for s in np.unique(recs.segment[at]).tolist()}
    labels = {"category": (products.category, products.categories),
              "subcategory": (products.subcategory, products.subcategories), "brand": (products.brand, products.brands)}
    sentences, segments, dates = [], [], []
    for r in range(rows.size):
        k, b = REASON_KINDS[kind[r]], int(because[r])
        name = products.names[b] if b >= 0 else None
        when = _day_words(int(day[r])) if b >= 0 and day[r] >= 0 else None
        segment = segment_text[int(recs.segment[at[r]])] if k == "segment" else None
        if k == "bought_with":
            text = f"Often bought together with {name}, which you bought on {when}."
        elif k == "similar_taste":
            text = f"Members who bought what you bought also bought this; it is closest to {name}, which you " \
                   f"bought on {when}."
        elif k == "buy_again":
            text = f"You bought this on {when}; time to buy it again?"
        elif k in labels:
            codes, names = labels[k]
            code = int(codes[item[r]])
            value = names[code] if code >= 0 else "its kind"
            text = {"category": f"Popular in {value}, a category you often buy.",
                    "subcategory": f"Popular in {value}, which you often buy.",
                    "brand": f"Popular from {value}, a brand you buy."}[k]
        elif k == "segment":
            text = f"Popular with {segment}."
        elif k == "popular_personal":
            text = "Popular with members who buy what you buy."
        else:
            text = "One of the shop's best sellers lately."
        sentences.append(text)
        segments.append(segment)
        dates.append(from_day_number(int(day[r])) if b >= 0 and day[r] >= 0 else None)
    category = products.category[item]
    return pd.DataFrame({
        "member_id": data.members.ids[recs.members[at]],
        "rank": ranks + 1,
        "product_id": products.ids[item],
        "product": products.names[item],
        "category": [products.categories[c] if c >= 0 else UNKNOWN_CATEGORY for c in category],
        "score": recs.scores[at, ranks],
        "source": [SOURCES[s] for s in recs.source[at, ranks]],
        "kind": [REASON_KINDS[k] for k in kind],
        "because_product_id": [products.ids[b] if b >= 0 else None for b in because],
        "because_product": [products.names[b] if b >= 0 else None for b in because],
        "because_date": dates,
        "segment": segments,
        "reason": sentences,
    }, columns=EXPLAIN_COLUMNS)
