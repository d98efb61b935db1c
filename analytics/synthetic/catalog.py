"""The demo shop's product catalogue: categories, brands, prices, a long tail and cross-sell pairs.

Popularity within a subcategory follows a Zipf law, so a few products sell a lot and most sell
little. Cross-sell pairs (a phone and its case, diapers and wipes) are planted: an order holding
the first product gains the second with a known probability, which basket analysis should find.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.synthetic.personas import CATEGORIES

# subcategory: (category, low price, high price, nouns, relative assortment size)
SUBCATEGORIES: dict[str, tuple[str, float, float, tuple[str, ...], float]] = {
    "Phones": ("Electronics", 1299, 6999, ("5G Phone", "Smartphone", "Foldable Phone"), 0.6),
    "Phone Accessories": ("Electronics", 19, 159,
                          ("Phone Case", "Screen Protector", "Fast Charger", "Power Bank"), 1.2),
    "Laptops": ("Electronics", 3299, 9999, ("Laptop", "Ultrabook", "Gaming Laptop"), 0.4),
    "Computer Accessories": ("Electronics", 39, 399, ("Wireless Mouse", "Keyboard", "USB-C Hub", "Laptop Sleeve"), 1.0),
    "Audio": ("Electronics", 99, 1599, ("Earbuds", "Headphones", "Bluetooth Speaker"), 0.8),
    "Smart Home": ("Electronics", 79, 899, ("Smart Plug", "Robot Vacuum", "Smart Camera", "Smart Lamp"), 0.7),
    "Skincare": ("Beauty", 59, 699, ("Hydrating Serum", "Moisturiser", "Cleanser", "Sunscreen", "Toner"), 1.6),
    "Makeup": ("Beauty", 39, 399, ("Lipstick", "Foundation", "Eyeshadow Palette", "Mascara"), 1.4),
    "Fragrance": ("Beauty", 199, 999, ("Eau de Parfum", "Body Mist"), 0.5),
    "Face Masks": ("Beauty", 29, 199, ("Sheet Masks", "Sleeping Mask", "Clay Mask"), 0.8),
    "Womenswear": ("Apparel", 79, 699, ("Dress", "Knit Cardigan", "Blouse", "Wide-leg Trousers", "Down Jacket"), 2.0),
    "Menswear": ("Apparel", 79, 699, ("Shirt", "Chinos", "Hoodie", "Puffer Jacket", "Polo"), 1.4),
    "Shoes": ("Apparel", 159, 999, ("Sneakers", "Loafers", "Ankle Boots", "Sandals"), 1.0),
    "Socks & Underwear": ("Apparel", 19, 99, ("Socks 5-pack", "Cotton Briefs", "Seamless Bra"), 0.7),
    "Kitchen": ("Home", 29, 899, ("Non-stick Pan", "Knife Set", "Rice Cooker", "Air Fryer"), 1.0),
    "Bedding": ("Home", 99, 999, ("Duvet", "Pillow", "Sheet Set"), 0.7),
    "Storage": ("Home", 19, 199, ("Storage Box", "Hangers 20-pack", "Drawer Organiser"), 0.6),
    "Coffee Machines": ("Home", 299, 2499, ("Espresso Machine", "Capsule Coffee Maker", "Milk Frother"), 0.4),
    "Coffee": ("Groceries", 39, 199, ("Coffee Beans 1kg", "Coffee Capsules", "Drip Coffee Bags"), 0.6),
    "Snacks": ("Groceries", 9, 69, ("Mixed Nuts", "Beef Jerky", "Seaweed Snacks", "Biscuits", "Dried Mango"), 1.6),
    "Beverages": ("Groceries", 19, 99, ("Sparkling Water 24-pack", "Oolong Tea", "Oat Milk 12-pack", "Juice"), 1.0),
    "Grain & Oil": ("Groceries", 19, 129, ("Northeast Rice 5kg", "Peanut Oil 5L", "Noodles", "Soy Sauce"), 0.8),
    "Fresh": ("Groceries", 19, 199, ("Cherries 1kg", "Beef Steak", "Salmon Fillet", "Organic Eggs"), 0.8),
    "Diapers": ("Mother & Baby", 69, 199, ("Diapers M", "Diapers L", "Pull-up Pants"), 0.6),
    "Baby Wipes": ("Mother & Baby", 19, 59, ("Baby Wipes 10-pack", "Hand & Mouth Wipes"), 0.4),
    "Formula": ("Mother & Baby", 199, 499, ("Infant Formula Stage 1", "Infant Formula Stage 2", "Toddler Milk"), 0.5),
    "Toys": ("Mother & Baby", 39, 399, ("Building Blocks", "Plush Toy", "Puzzle", "Ride-on Car"), 0.8),
    "Running": ("Sports & Outdoor", 199, 899, ("Running Shoes", "Running Shorts", "Sports Watch"), 0.8),
    "Sports Socks": ("Sports & Outdoor", 19, 79, ("Running Socks 3-pack", "Compression Socks"), 0.3),
    "Fitness": ("Sports & Outdoor", 49, 699, ("Yoga Mat", "Dumbbells", "Resistance Bands"), 0.7),
    "Camping": ("Sports & Outdoor", 99, 1299, ("Tent", "Sleeping Bag", "Camping Chair", "Lantern"), 0.6),
    "Pet Food": ("Pets", 49, 299, ("Cat Food 2kg", "Dog Food 5kg", "Cat Treats"), 0.6),
    "Pet Supplies": ("Pets", 19, 199, ("Cat Litter", "Pet Bed", "Chew Toy", "Litter Scoop"), 0.6),
}

#: Planted "bought A, also bought B" pairs by subcategory, with the chance B joins an order with A.
CROSS_SELL: tuple[tuple[str, str, float], ...] = (
    ("Phones", "Phone Accessories", 0.55),
    ("Laptops", "Computer Accessories", 0.5),
    ("Skincare", "Face Masks", 0.35),
    ("Diapers", "Baby Wipes", 0.5),
    ("Coffee Machines", "Coffee", 0.6),
    ("Running", "Sports Socks", 0.45),
    ("Camping", "Camping", 0.35),
    ("Pet Food", "Pet Supplies", 0.3),
    ("Womenswear", "Shoes", 0.2),
    ("Snacks", "Beverages", 0.25),
)
#: How many of A's most popular products carry a planted partner.
PAIRED_PRODUCTS_PER_RULE = 6

BRANDS: dict[str, tuple[str, ...]] = {
    "Electronics": ("Lumio", "Xingyao", "Nordcell", "Pivot", "Aurion", "Kesi"),
    "Beauty": ("Lanxi", "Peony Lab", "Vela", "Mistra", "Yunshan", "Clairé"),
    "Apparel": ("Moyu", "Urban Reed", "Linen & Co", "Hanfeng", "Stride", "Qingmu"),
    "Home": ("Hearthly", "Muji-ish", "Casaro", "Tiangong", "Brewell"),
    "Groceries": ("Three Squirrels Farm", "Golden Field", "Shanquan", "Daily Harvest", "Brewell"),
    "Mother & Baby": ("Little Panda", "Beibei", "Softly", "Tinystep"),
    "Sports & Outdoor": ("Peakline", "Feiyue Sport", "Trailfox", "Corefit"),
    "Pets": ("Purrfect", "Wangwang", "Tailwise"),
}
DESCRIPTORS = ("Classic", "Pro", "Lite", "Plus", "Max", "Air", "Essential", "Premium", "Mini", "Eco", "Ultra", "Daily")


@dataclass(frozen=True)
class Catalog:
    """Products as parallel arrays (index = product number), with sampling helpers."""

    product_no: np.ndarray  # int64, 1-based numbers behind ids "P000001"
    name: list[str]
    category: np.ndarray  # int index into CATEGORIES
    subcategory: list[str]
    subcategory_idx: np.ndarray
    brand: list[str]
    price_cents: np.ndarray  # int64
    popularity: np.ndarray  # float64, Zipf weight within subcategory
    partner: np.ndarray  # int64 product index of the planted partner, -1 if none
    partner_prob: np.ndarray  # float64
    # per category: product indices and their cumulative sampling weights (plain and price-tilted)
    by_category: tuple[np.ndarray, ...]

    @property
    def size(self) -> int:
        return len(self.product_no)


def build_catalog(rng: np.random.Generator, n_products: int = 3000) -> Catalog:
    """A deterministic catalogue of about ``n_products`` products."""
    names: list[str] = []
    subcats: list[str] = []
    brands: list[str] = []
    category: list[int] = []
    sub_idx: list[int] = []
    prices: list[int] = []
    popularity: list[float] = []
    total_size = sum(v[4] for v in SUBCATEGORIES.values())
    for s_i, (sub, (cat, lo, hi, nouns, size)) in enumerate(SUBCATEGORIES.items()):
        count = max(8, round(n_products * size / total_size))
        cat_i = CATEGORIES.index(cat)
        brand_pool = BRANDS[cat]
        # log-uniform prices across the subcategory's range, ending in 9 like real price tags
        raw = np.exp(rng.uniform(np.log(lo), np.log(hi), size=count))
        cents = np.rint((np.floor(raw) + 0.9) * 100).astype(np.int64)
        zipf = 1.0 / np.arange(1, count + 1) ** 1.15
        order = rng.permutation(count)  # popularity rank is independent of price
        for j in range(count):
            brand = brand_pool[int(rng.integers(len(brand_pool)))]
            noun = nouns[j % len(nouns)]
            desc = DESCRIPTORS[int(rng.integers(len(DESCRIPTORS)))]
            names.append(f"{brand} {desc} {noun} {chr(65 + j % 26)}{1 + j // 26}")
            subcats.append(sub)
            brands.append(brand)
            category.append(cat_i)
            sub_idx.append(s_i)
            prices.append(int(cents[j]))
            popularity.append(float(zipf[order[j]]))
    n = len(names)
    category_arr = np.array(category)
    sub_arr = np.array(sub_idx)
    # cheaper products sell more: damp popularity by price across the whole catalogue
    price_arr = np.array(prices, dtype=np.float64)
    pop = np.array(popularity) * (price_arr / np.median(price_arr)) ** -0.7
    partner = np.full(n, -1, dtype=np.int64)
    partner_prob = np.zeros(n)
    sub_names = list(SUBCATEGORIES)
    for a, b, prob in CROSS_SELL:
        a_items = np.flatnonzero(sub_arr == sub_names.index(a))
        b_items = np.flatnonzero(sub_arr == sub_names.index(b))
        top_a = a_items[np.argsort(-pop[a_items])][:PAIRED_PRODUCTS_PER_RULE]
        top_b = b_items[np.argsort(-pop[b_items])]
        for rank, p in enumerate(top_a):
            candidates = top_b[top_b != p]
            partner[p] = candidates[rank % len(candidates)]
            partner_prob[p] = prob
    by_category = tuple(np.flatnonzero(category_arr == c) for c in range(len(CATEGORIES)))
    return Catalog(
        product_no=np.arange(1, n + 1, dtype=np.int64),
        name=names,
        category=category_arr,
        subcategory=subcats,
        subcategory_idx=sub_arr,
        brand=brands,
        price_cents=np.array(prices, dtype=np.int64),
        popularity=pop,
        partner=partner,
        partner_prob=partner_prob,
        by_category=by_category,
    )


def sample_products(
    rng: np.random.Generator, catalog: Catalog, categories: np.ndarray, price_level: np.ndarray
) -> np.ndarray:
    """Pick one product per requested category, by popularity tilted towards the buyer's price level.

    ``price_level`` above one favours dearer products in the category (VIPs buy the flagship phone).
    """
    out = np.empty(len(categories), dtype=np.int64)
    log_price = np.log(catalog.price_cents)
    for c, items in enumerate(catalog.by_category):
        rows = np.flatnonzero(categories == c)
        if rows.size == 0:
            continue
        # Three price tilts (cheap, neutral, dear) keep sampling vectorised; each row uses the
        # tilt nearest its buyer's price level.
        lp = log_price[items] - log_price[items].mean()
        tilts = np.array([-0.6, 0.0, 0.6])
        level = np.log(np.clip(price_level[rows], 0.2, 5.0))
        which = np.abs(level[:, None] - tilts[None, :]).argmin(axis=1)
        for t_i, tilt in enumerate(tilts):
            sel = rows[which == t_i]
            if sel.size == 0:
                continue
            w = catalog.popularity[items] * np.exp(tilt * lp)
            cum = np.cumsum(w / w.sum())
            picks = np.searchsorted(cum, rng.random(sel.size) * cum[-1], side="right")
            out[sel] = items[np.minimum(picks, len(items) - 1)]
    return out
