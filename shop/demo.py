"""A believable demo shop: a catalog in categories, customers, and months of orders with real
co-purchase structure (a camera with a memory card and a bag, an espresso machine with beans and
a grinder...), plus noise, staples, repeat customers and a few products with no sales yet.

Everything random comes from one seeded ``random.Random``, so a seed gives the same shop.
"""

from __future__ import annotations

import bisect
import itertools
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from crosssell.models import Build, PendingUpdate, Product, Purchase, Recommendation
from shop.models import Order, OrderLine

ProgressFn = Callable[[str, int, int], None]
BATCH = 2_000


@dataclass(frozen=True)
class Leaf:
    """A leaf category of the demo catalog and how its products are named and priced."""

    code: str
    path: str
    weight: float  # share of the catalog
    price: tuple[float, float]
    pattern: str  # uses {brand} {line} {variant}
    brands: tuple[str, ...]
    lines: tuple[str, ...]
    variants: tuple[str, ...] = ("",)
    blurbs: tuple[str, ...] = ()
    demand: float = 1.0  # how often it starts an order
    variant_step: float = 0.0  # price ratio between successive variants (sizes, capacities)


LEAVES: tuple[Leaf, ...] = (
    Leaf(
        "CAM",
        "Photo > Cameras",
        0.05,
        (449, 2899),
        "{brand} {line} {variant} mirrorless camera",
        ("Nikara", "Canora", "Sonix", "Fujiro", "Olymar"),
        ("Z", "Alpha", "X-T", "R", "OM"),
        ("50", "5 II", "7 IV", "30", "6", "100"),
        (
            "24 MP sensor with in-body stabilisation.",
            "4K video at 60 fps.",
            "Weather-sealed magnesium body.",
            "Fast hybrid autofocus with eye tracking.",
            "Fold-out touchscreen for vlogging.",
            "Dual card slots and USB-C charging.",
        ),
        demand=1.4,
    ),
    Leaf(
        "LEN",
        "Photo > Lenses",
        0.05,
        (179, 1699),
        "{brand} {line} {variant} lens",
        ("Nikara", "Canora", "Sonix", "Sigmar", "Tamrox"),
        ("35mm f/1.8", "50mm f/1.4", "24-70mm f/2.8", "70-200mm f/4", "85mm f/1.8", "16mm f/2.8"),
        ("", "Macro", "Art"),
        (
            "Sharp corner to corner, wide open.",
            "Quiet stepping motor for video.",
            "Compact and light enough for travel.",
            "Nine rounded aperture blades for soft bokeh.",
        ),
        demand=0.6,
        variant_step=0.3,
    ),
    Leaf(
        "MEM",
        "Photo > Memory cards",
        0.04,
        (12, 129),
        "{brand} {line} {variant} card",
        ("SanVault", "Kingsdale", "Lexmor", "Prograf"),
        ("Extreme Pro", "Canvas Go", "Professional 1800x", "Ultra"),
        ("64 GB SDXC", "128 GB SDXC", "256 GB SDXC", "128 GB microSD"),
        (
            "UHS-II, up to 300 MB/s read.",
            "V30 rated for 4K recording.",
            "Waterproof, shockproof and X-ray proof.",
            "Lifetime limited warranty.",
        ),
        demand=0.5,
        variant_step=0.7,
    ),
    Leaf(
        "BAG",
        "Photo > Bags",
        0.04,
        (39, 249),
        "{brand} {line} camera bag, {variant}",
        ("Lowden", "Peak Form", "Thinkwell", "Vanfield"),
        ("Sling 6L", "Everyday Backpack 20L", "Messenger 13", "Holster 5", "Tote 15L"),
        ("black", "sage", "ash", "midnight blue"),
        (
            "Padded, configurable dividers.",
            "Weatherproof recycled nylon shell.",
            "Quick side access to the camera.",
            "Fits a 13-inch laptop.",
        ),
        demand=0.4,
    ),
    Leaf(
        "TRI",
        "Photo > Tripods",
        0.025,
        (49, 499),
        "{brand} {line} tripod, {variant}",
        ("Manfrodo", "Vanguardia", "Jobo"),
        ("Befree Advanced", "Traveller", "Compact Action", "GripPod"),
        ("aluminium", "carbon fibre"),
        ("Folds down to 40 cm.", "Ball head with Arca-type plate.", "Holds up to 8 kg."),
        demand=0.4,
    ),
    Leaf(
        "BAT",
        "Photo > Batteries & chargers",
        0.025,
        (19, 89),
        "{brand} {line} {variant}",
        ("Nikara", "Canora", "Sonix", "Patona"),
        ("rechargeable battery", "dual USB-C charger", "battery grip"),
        ("EN-EL15c", "LP-E6NH", "NP-FZ100", "NP-W235"),
        ("Genuine cells with overcharge protection.", "Shows remaining charge on the camera."),
        demand=0.3,
    ),
    Leaf(
        "ESP",
        "Coffee > Espresso machines",
        0.04,
        (229, 1899),
        "{brand} {line} espresso machine",
        ("Breva", "Gaggino", "Rancilo", "Sagewood", "DeLumi"),
        ("Classic Pro", "Barista Express", "Silvia", "Dedica", "Bambino Plus", "Duo Temp"),
        ("",),
        (
            "PID temperature control for stable shots.",
            "Commercial 58 mm portafilter.",
            "Steam wand that textures milk for latte art.",
            "Heats up in three seconds.",
        ),
        demand=1.2,
    ),
    Leaf(
        "BEA",
        "Coffee > Beans",
        0.08,
        (8.5, 39),
        "{brand} {line}, {variant}",
        ("Round Hill", "Night Owl Roasters", "Origin Lane", "Brew Theory"),
        (
            "Ethiopia Yirgacheffe",
            "Colombia Huila",
            "Brazil Cerrado",
            "House Espresso blend",
            "Kenya AA",
            "Decaf Swiss Water",
            "Guatemala Antigua",
        ),
        ("250 g", "1 kg"),
        (
            "Roasted to order, shipped within two days.",
            "Notes of stone fruit and cocoa.",
            "Medium roast, great for espresso and filter.",
            "Direct trade, traceable to the farm.",
        ),
        demand=0.9,
        variant_step=2.2,
    ),
    Leaf(
        "GRI",
        "Coffee > Grinders",
        0.035,
        (59, 699),
        "{brand} {line} grinder",
        ("Baratino", "Comandor", "Timewell", "Nook", "Eureko"),
        ("Encore ESP", "Mignon Silenzio", "C40 hand", "Zero", "Specialita", "Slim"),
        ("",),
        (
            "Stepless grind adjustment.",
            "Flat burrs for even extraction.",
            "Low retention, single-dose friendly.",
            "Quiet enough for early mornings.",
        ),
        demand=0.7,
    ),
    Leaf(
        "CUP",
        "Coffee > Cups & mugs",
        0.045,
        (9, 39),
        "{brand} {line}, {variant}",
        ("Lovera", "KeepWell", "Acme & Co", "Kinto"),
        ("espresso cup 80 ml", "flat white cup 150 ml", "latte mug 280 ml", "travel cup 340 ml"),
        ("white", "charcoal", "terracotta", "sky"),
        (
            "Porcelain, dishwasher safe.",
            "Double-walled to keep coffee hot.",
            "Made for baristas, stacks neatly.",
        ),
        demand=0.4,
    ),
    Leaf(
        "CAC",
        "Coffee > Accessories",
        0.035,
        (6, 79),
        "{brand} {line}",
        ("Brew Theory", "Motta", "Hario", "Cafelat"),
        (
            "paper filters 100 pcs",
            "milk jug 600 ml",
            "tamper 58 mm",
            "knock box",
            "descaler 3 doses",
            "digital scale with timer",
            "dosing cup",
        ),
        ("",),
        ("Everything you need for a better cup.", "Stainless steel, built to last."),
        demand=0.5,
    ),
    Leaf(
        "TEN",
        "Outdoor > Tents",
        0.04,
        (149, 899),
        "{brand} {line} tent, {variant}",
        ("Hillberg", "Ridgeline", "Vaudry", "Nordvik"),
        ("Trail", "Hubba", "Alpine", "Lightpack", "Basecamp"),
        ("1-person", "2-person", "3-person"),
        (
            "Freestanding, pitches in five minutes.",
            "Double-wall with two vestibules.",
            "Under 2 kg packed.",
            "Four-season poles for high winds.",
        ),
        demand=1.0,
        variant_step=0.35,
    ),
    Leaf(
        "SLB",
        "Outdoor > Sleeping bags",
        0.035,
        (69, 449),
        "{brand} {line} sleeping bag, {variant}",
        ("Hillberg", "Ridgeline", "Vaudry", "Mountain Equip"),
        ("Down 700", "Synthetic Trek", "Summer Lite", "Expedition"),
        ("comfort -5 °C", "comfort 0 °C", "comfort +8 °C"),
        (
            "Responsibly sourced down.",
            "Packs to the size of a melon.",
            "Two-way zip for ventilation.",
        ),
        demand=0.6,
        variant_step=-0.15,
    ),
    Leaf(
        "MAT",
        "Outdoor > Sleeping mats",
        0.025,
        (39, 219),
        "{brand} {line} sleeping mat",
        ("Thermarock", "Sea Summit", "Exped"),
        ("NeoAir XLite", "Ultralight Insulated", "SynMat", "Trail Pro", "Comfort Plus"),
        ("",),
        ("R-value 4.2 for three seasons.", "Inflates in ten breaths with the pump sack."),
        demand=0.4,
    ),
    Leaf(
        "STO",
        "Outdoor > Stoves",
        0.025,
        (35, 199),
        "{brand} {line} stove",
        ("MSX", "Jetfire", "Primo"),
        ("PocketRocket", "WindBurner", "Flash", "Lite+", "Whisperlite"),
        ("",),
        ("Boils a litre in about three minutes.", "Piezo ignition.", "Weighs 73 g."),
        demand=0.6,
    ),
    Leaf(
        "CKW",
        "Outdoor > Cookware & fuel",
        0.03,
        (5, 69),
        "{brand} {line}",
        ("MSX", "Jetfire", "Primo", "Toaks"),
        (
            "gas canister 230 g",
            "gas canister 450 g",
            "titanium pot 750 ml",
            "spork",
            "camp mug 450 ml",
            "cook set 2-person",
        ),
        ("",),
        ("Fits every screw-valve stove.", "Titanium: light and tough."),
        demand=0.4,
    ),
    Leaf(
        "HLP",
        "Outdoor > Headlamps",
        0.02,
        (19, 119),
        "{brand} {line} headlamp, {variant}",
        ("Petzo", "Black Pine", "Ledlite"),
        ("Actik", "Spot", "Swift RL", "Tikka"),
        ("350 lm", "450 lm", "1100 lm"),
        ("Rechargeable via USB-C.", "Red light mode keeps your night vision."),
        demand=0.4,
        variant_step=0.4,
    ),
    Leaf(
        "KNI",
        "Kitchen > Knives",
        0.035,
        (29, 249),
        "{brand} {line} {variant}",
        ("Wusting", "Globo", "Tojima", "Victoria"),
        ("Classic", "Ikon", "DP", "Fibrox"),
        ("chef's knife 20 cm", "santoku 18 cm", "paring knife 9 cm", "bread knife 23 cm"),
        ("Forged from one piece of steel.", "Hand-honed 15° edge.", "Balanced, full-tang handle."),
        demand=0.9,
    ),
    Leaf(
        "BRD",
        "Kitchen > Cutting boards",
        0.02,
        (19, 129),
        "{brand} {line} cutting board, {variant}",
        ("Boos Block", "Epicura", "Oakwood"),
        ("end-grain", "edge-grain", "composite"),
        ("30 x 20 cm", "45 x 30 cm"),
        ("Kind to knife edges.", "Juice groove on one side."),
        demand=0.3,
        variant_step=0.5,
    ),
    Leaf(
        "SHA",
        "Kitchen > Sharpeners",
        0.015,
        (15, 99),
        "{brand} {line}",
        ("Wusting", "Tojima", "Kingfield"),
        ("whetstone 1000/6000", "pull-through sharpener", "honing steel 23 cm", "ceramic rod"),
        ("",),
        ("Restores a razor edge in minutes.",),
        demand=0.3,
    ),
    Leaf(
        "PAN",
        "Kitchen > Pans",
        0.03,
        (29, 199),
        "{brand} {line} {variant}",
        ("Lodgestone", "De Bayer", "Scanpan", "Tefal Pro"),
        ("cast iron skillet", "carbon steel pan", "non-stick frying pan", "saute pan"),
        ("24 cm", "28 cm"),
        ("Oven safe to 260 °C.", "Works on induction.", "Pre-seasoned and ready to cook."),
        demand=0.7,
        variant_step=0.2,
    ),
    Leaf(
        "UTE",
        "Kitchen > Utensils",
        0.025,
        (5, 39),
        "{brand} {line}",
        ("OXO Home", "Joseph Line", "Rösle"),
        ("fish spatula", "silicone tongs", "wooden spoon set", "whisk", "pan scraper"),
        ("",),
        ("Heat resistant to 250 °C.", "Dishwasher safe."),
        demand=0.3,
    ),
    Leaf(
        "NOT",
        "Office > Notebooks",
        0.035,
        (6, 34),
        "{brand} {line} notebook, {variant}",
        ("Leuchtwerk", "Moleskein", "Rhodo", "Field Days"),
        ("Classic A5", "Pocket", "Softcover A4", "Bullet journal"),
        ("dotted", "ruled", "plain"),
        ("120 g/m² paper that takes fountain pen ink.", "Lay-flat binding, numbered pages."),
        demand=0.6,
    ),
    Leaf(
        "PEN",
        "Office > Pens",
        0.03,
        (3, 89),
        "{brand} {line}, {variant}",
        ("Lamio", "Pilotta", "Kaweco", "Uniball"),
        ("Safari fountain pen", "gel pen 0.5", "Sport pocket pen", "rollerball"),
        ("black", "blue", "green"),
        ("Smooth, skip-free ink flow.", "Steel nib, medium."),
        demand=0.5,
    ),
    Leaf(
        "INK",
        "Office > Ink & refills",
        0.015,
        (3, 19),
        "{brand} {line}",
        ("Lamio", "Pilotta", "Kaweco"),
        ("ink cartridges 5 pcs", "bottled ink 50 ml", "gel refill 3 pcs", "converter"),
        ("",),
        ("Fits the brand's pens.",),
        demand=0.3,
    ),
    Leaf(
        "LMP",
        "Office > Desk lamps",
        0.02,
        (39, 249),
        "{brand} {line} desk lamp",
        ("Anglepose", "BenQ Lite", "Muuto"),
        ("Type 75", "e-Reading", "Tip", "Task LED"),
        ("",),
        ("Flicker-free LED, dimmable.", "Adjustable colour temperature."),
        demand=0.4,
    ),
    Leaf(
        "ESS",
        "Essentials",
        0.04,
        (3, 25),
        "{brand} {line}",
        ("Basics", "Everyday", "Shop"),
        (
            "AA batteries 8-pack",
            "USB-C cable 1 m",
            "gift wrap",
            "microfibre cloth",
            "canvas tote bag",
            "gift card",
        ),
        ("",),
        ("A handy extra for any order.",),
        demand=0.2,
    ),
)

#: Anchor leaf -> complements: (leaf code, probability, how many at most).
COMPLEMENTS: dict[str, tuple[tuple[str, float, int], ...]] = {
    "CAM": (("MEM", 0.75, 2), ("BAG", 0.5, 1), ("BAT", 0.35, 1), ("LEN", 0.2, 1), ("TRI", 0.12, 1)),
    "LEN": (("BAG", 0.25, 1), ("TRI", 0.2, 1), ("MEM", 0.15, 1)),
    "TRI": (("BAG", 0.2, 1),),
    "ESP": (("BEA", 0.8, 2), ("GRI", 0.55, 1), ("CUP", 0.45, 2), ("CAC", 0.5, 2)),
    "GRI": (("BEA", 0.7, 2), ("CAC", 0.3, 1)),
    "BEA": (("CAC", 0.15, 1), ("CUP", 0.1, 1)),
    "TEN": (("SLB", 0.6, 2), ("MAT", 0.55, 2), ("STO", 0.4, 1), ("HLP", 0.35, 1)),
    "SLB": (("MAT", 0.5, 1), ("HLP", 0.2, 1)),
    "STO": (("CKW", 0.85, 2),),
    "KNI": (("BRD", 0.55, 1), ("SHA", 0.45, 1)),
    "PAN": (("UTE", 0.5, 2), ("BRD", 0.15, 1)),
    "NOT": (("PEN", 0.6, 2),),
    "PEN": (("INK", 0.45, 1), ("NOT", 0.25, 1)),
    "LMP": (("NOT", 0.2, 1),),
}

FIRST_NAMES = (
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Katie",
    "Liam",
    "Maya",
    "Noah",
    "Olivia",
    "Paul",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Will",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Amir",
    "Bea",
    "Carlos",
    "Dana",
    "Elif",
    "Finn",
    "Gita",
    "Hana",
    "Ivan",
    "Jade",
    "Kofi",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Priya",
    "Rui",
    "Sofia",
)
LAST_NAMES = (
    "Andersen",
    "Baker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Walsh",
    "Young",
    "Zhang",
    "Berg",
    "Novak",
    "Silva",
)


@dataclass
class DemoProduct:
    """A product before it is saved."""

    sku: str
    name: str
    leaf: Leaf
    brand: str
    price: Decimal
    description: str
    stock: int | None
    created_at: datetime
    sells: bool = True


@dataclass
class DemoOrder:
    """An order before it is saved: product indices into the catalog."""

    ref: str
    customer: int | None  # index into the customers, None for a guest
    when: datetime
    items: list[int] = field(default_factory=list)


@dataclass
class Summary:
    """What :func:`generate` wrote."""

    products: int = 0
    categories: int = 0
    customers: int = 0
    orders: int = 0
    lines: int = 0
    without_sales: int = 0
    inactive: list[str] = field(default_factory=list)
    out_of_stock: list[str] = field(default_factory=list)


def _weighted(rng: random.Random, weights: Sequence[float]) -> Callable[[], int]:
    """A sampler of indices with the given weights (cumulative table + bisect: fast)."""
    cum = list(itertools.accumulate(weights))
    total = cum[-1]

    def pick() -> int:
        return bisect.bisect_right(cum, rng.random() * total)

    return pick


def _member_picker(members: list[int], draw: Callable[[], int]) -> Callable[[], int]:
    return lambda: members[draw()]


def _price(value: float) -> Decimal:
    # A shop-like ending: .99 for cheap things, round tens minus one for expensive ones.
    if value >= 200:
        return Decimal(int(round(value / 10) * 10) - 1)
    if value >= 20:
        return Decimal(f"{int(value)}.99")
    return Decimal(str(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) + Decimal("0.09")


def build_catalog(rng: random.Random, n_products: int, now: datetime) -> list[DemoProduct]:
    """About ``n_products`` products spread over the leaves by weight, unique names."""
    total_weight = sum(leaf.weight for leaf in LEAVES)
    out: list[DemoProduct] = []
    for leaf in LEAVES:
        target = max(3, round(n_products * leaf.weight / total_weight))
        combos = [(b, ln, v) for b in leaf.brands for ln in leaf.lines for v in leaf.variants]
        rng.shuffle(combos)
        # Log-uniform base price per model; sizes and capacities cost more, colours do not.
        base: dict[tuple[str, str], float] = {}
        low, high = leaf.price
        top = max(1.0, (1 + leaf.variant_step) ** (len(leaf.variants) - 1))
        for n, (brand, line, variant) in enumerate(combos[:target], start=1):
            name = " ".join(leaf.pattern.format(brand=brand, line=line, variant=variant).split())
            name = name.replace(" ,", ",").rstrip(", ")
            blurbs = rng.sample(leaf.blurbs, k=min(2, len(leaf.blurbs))) if leaf.blurbs else []
            out.append(
                DemoProduct(
                    sku=f"{leaf.code}-{n:04d}",
                    name=name,
                    leaf=leaf,
                    brand=brand,
                    price=_price(
                        base.setdefault((brand, line), low * (high / top / low) ** rng.random())
                        * (1 + leaf.variant_step) ** leaf.variants.index(variant)
                    ),
                    description=" ".join([f"The {name} from {brand}.", *blurbs]),
                    stock=None if rng.random() < 0.25 else rng.randint(4, 160),
                    created_at=now - timedelta(days=rng.randint(200, 700)),
                )
            )
    return out


def build_orders(
    rng: random.Random,
    catalog: list[DemoProduct],
    n_orders: int,
    n_customers: int,
    now: datetime,
    days: int = 180,
) -> list[DemoOrder]:
    """Orders built from shopping missions: an anchor product with its complements (with
    product-level affinities, e.g. a camera's own battery), consumables, noise and staples."""
    by_leaf: dict[str, list[int]] = {}
    for i, p in enumerate(catalog):
        if p.sells:
            by_leaf.setdefault(p.leaf.code, []).append(i)
    # Popularity within each leaf: Zipf over a random order, so a few products sell most.
    pickers: dict[str, Callable[[], int]] = {}
    for code, members in by_leaf.items():
        weights = [1.0 / (r + 1) ** 1.1 for r in range(len(members))]
        rng.shuffle(members)
        pickers[code] = _member_picker(members, _weighted(rng, weights))
    # Each anchor product has favourite complements (same brand when the leaf has it).
    favourites: dict[tuple[int, str], list[int]] = {}
    for code, comps in COMPLEMENTS.items():
        for i in by_leaf.get(code, []):
            for comp, _, _ in comps:
                members = by_leaf.get(comp, [])
                if not members:
                    continue
                same = [j for j in members if catalog[j].brand == catalog[i].brand]
                pool = same or members
                favs = rng.sample(pool, k=min(2, len(pool)))
                if len(favs) < 2 and len(members) > 1:
                    favs.append(rng.choice([j for j in members if j not in favs]))
                favourites[(i, comp)] = favs
    leaf_codes = [code for code in by_leaf]
    demand = {leaf.code: leaf.demand for leaf in LEAVES}
    anchor_codes = [c for c in leaf_codes if c in COMPLEMENTS]
    tops = sorted({catalog[by_leaf[c][0]].leaf.path.split(" > ")[0] for c in anchor_codes})
    anchors_of_top = {
        t: [c for c in anchor_codes if catalog[by_leaf[c][0]].leaf.path.startswith(t)] for t in tops
    }
    pick_anchor_any = _weighted(rng, [demand[c] for c in anchor_codes])
    pick_any_leaf = _weighted(rng, [demand[c] * len(by_leaf[c]) for c in leaf_codes])
    staples = by_leaf.get("ESS", [])
    consumables = [c for c in ("BEA", "MEM", "CKW", "CAC", "INK", "NOT") if c in by_leaf]
    # Customers: a few buy often (Pareto activity); each has a favourite department.
    activity = [rng.paretovariate(1.3) for _ in range(n_customers)]
    pick_customer = _weighted(rng, activity)
    taste = [rng.choice(tops) for _ in range(n_customers)] if tops else []
    orders: list[DemoOrder] = []
    span = days * 86_400
    for n in range(n_orders):
        # Slightly more orders lately: the shop is growing.
        offset = span * (1 - rng.random() ** 0.8)
        when = now - timedelta(seconds=span - offset + 3600)
        customer = None if rng.random() < 0.12 or not n_customers else pick_customer()
        order = DemoOrder(ref=f"D{n + 1:06d}", customer=customer, when=when)
        items: list[int] = []
        mission = rng.random()
        if mission < 0.66 and anchor_codes:
            if customer is not None and rng.random() < 0.7:
                code = rng.choice(anchors_of_top[taste[customer]])
            else:
                code = anchor_codes[pick_anchor_any()]
            anchor = pickers[code]()
            items.append(anchor)
            for comp, prob, most in COMPLEMENTS[code]:
                if comp not in by_leaf or rng.random() >= prob:
                    continue
                for _ in range(rng.randint(1, most)):
                    favs = favourites.get((anchor, comp), [])
                    roll = rng.random()
                    if favs and roll < 0.6:
                        items.append(favs[0])
                    elif len(favs) > 1 and roll < 0.8:
                        items.append(favs[1])
                    else:
                        items.append(pickers[comp]())
        elif mission < 0.85 and consumables:
            code = rng.choice(consumables)
            items.extend(pickers[code]() for _ in range(rng.randint(1, 3)))
        else:
            items.extend(pickers[leaf_codes[pick_any_leaf()]]() for _ in range(rng.randint(1, 2)))
        if staples and rng.random() < 0.12:
            items.append(pickers["ESS"]())
        order.items = list(dict.fromkeys(items))
        orders.append(order)
    orders.sort(key=lambda o: o.when)
    return orders


def generate(
    n_products: int = 400,
    n_orders: int = 6_000,
    seed: int = 7,
    *,
    now: datetime | None = None,
    with_orders: bool = True,
    progress: ProgressFn | None = None,
) -> Summary:
    """Write a demo shop: products, customers (users), shop orders and crosssell purchases.

    Parameters
    ----------
    n_products
        About how many products (at least three per leaf category).
    n_orders
        How many orders, spread over the last 180 days.
    seed
        Everything random derives from it: the same seed gives the same shop.
    now
        The end of the order history (default: now).
    with_orders
        Also write the sample shop's ``Order`` and ``OrderLine`` rows (not only purchases).
    progress
        Called as ``progress(stage, done, total)``.
    """
    if n_products < 30:
        raise ValueError("A demo shop needs at least 30 products.")
    if n_orders < 0:
        raise ValueError("The number of orders cannot be negative.")
    now = now or timezone.now()
    rng = random.Random(seed)
    report = progress or (lambda stage, done, total: None)
    catalog = build_catalog(rng, n_products, now)
    # New arrivals: no sales yet (served by content similarity and the fallbacks).
    n_new = max(3, len(catalog) // 25)
    for p in rng.sample(catalog, n_new):
        p.sells = False
        p.created_at = now - timedelta(days=rng.randint(1, 10))
    n_customers = max(20, n_orders // 3)
    orders = build_orders(rng, catalog, n_orders, n_customers, now)
    summary = Summary(
        products=len(catalog),
        categories=len({p.leaf.path for p in catalog}),
        customers=n_customers,
        orders=len(orders),
        lines=sum(len(o.items) for o in orders),
        without_sales=sum(1 for p in catalog if p.sells is False),
    )
    sold = {i for o in orders for i in o.items}
    summary.without_sales = len(catalog) - len(sold)

    with transaction.atomic():
        report("products", 0, len(catalog))
        objs = [
            Product(
                sku=p.sku,
                name=p.name,
                description=p.description,
                category=p.leaf.path,
                price=p.price,
                stock=p.stock,
                created_at=p.created_at,
            )
            for p in catalog
        ]
        _mark_unsellable(rng, catalog, objs, sold, summary)
        Product.objects.bulk_create(objs, batch_size=BATCH)
        pks = dict(
            Product.objects.filter(sku__in=[p.sku for p in catalog]).values_list("sku", "pk")
        )
        pk_of = [pks[p.sku] for p in catalog]
        report("products", len(catalog), len(catalog))

        User = get_user_model()
        users = []
        for c in range(n_customers):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            username = f"{first}.{last}.{c + 1}".lower()
            users.append(
                User(
                    username=username,
                    first_name=first,
                    last_name=last,
                    email=f"{username}@example.com",
                    password="!demo",  # unusable: demo customers cannot sign in
                    date_joined=now - timedelta(days=rng.randint(30, 900)),
                )
            )
        User.objects.bulk_create(users, batch_size=BATCH)
        user_pk = dict(
            User.objects.filter(username__in=[u.username for u in users]).values_list(
                "username", "pk"
            )
        )
        customer_pk = [user_pk[u.username] for u in users]
        report("customers", n_customers, n_customers)

        purchases: list[Purchase] = []
        shop_orders: list[Order] = []
        shop_lines: list[tuple[int, list[tuple[int, int, Decimal]]]] = []
        for o in orders:
            cust = customer_pk[o.customer] if o.customer is not None else None
            lines = []
            for i in o.items:
                qty = 1 if rng.random() < 0.85 else rng.randint(2, 3)
                price = catalog[i].price
                purchases.append(
                    Purchase(
                        order_ref=o.ref,
                        customer_ref=str(cust) if cust is not None else "",
                        product_id=pk_of[i],
                        quantity=qty,
                        unit_price=price,
                        purchased_at=o.when,
                    )
                )
                lines.append((pk_of[i], qty, price))
            if with_orders:
                user = users[o.customer] if o.customer is not None else None
                shop_orders.append(
                    Order(
                        number=o.ref,
                        user_id=cust,
                        name=f"{user.first_name} {user.last_name}" if user else "Guest",
                        email=user.email if user else "guest@example.com",
                        total=sum((q * p for _, q, p in lines), Decimal("0")),
                        created_at=o.when,
                    )
                )
                shop_lines.append((len(shop_orders) - 1, lines))
        for start in range(0, len(purchases), BATCH):
            Purchase.objects.bulk_create(purchases[start : start + BATCH])
            report("purchases", min(start + BATCH, len(purchases)), len(purchases))
        if with_orders:
            Order.objects.bulk_create(shop_orders, batch_size=BATCH)
            order_pk = dict(
                Order.objects.filter(number__in=[o.number for o in shop_orders]).values_list(
                    "number", "pk"
                )
            )
            order_lines = [
                OrderLine(
                    order_id=order_pk[shop_orders[k].number],
                    product_id=pid,
                    quantity=q,
                    unit_price=price,
                )
                for k, lines in shop_lines
                for pid, q, price in lines
            ]
            OrderLine.objects.bulk_create(order_lines, batch_size=BATCH)
            report("orders", len(shop_orders), len(shop_orders))
    return summary


def _mark_unsellable(
    rng: random.Random,
    catalog: list[DemoProduct],
    objs: list[Product],
    sold: set[int],
    summary: Summary,
) -> None:
    """One discontinued camera (inactive) and one sold-out bag (stock 0), both with sales, so
    the widgets' business rules have something to filter."""
    for code, attr in (("CAM", "inactive"), ("BAG", "out_of_stock")):
        candidates = [i for i, p in enumerate(catalog) if p.leaf.code == code and i in sold]
        if not candidates:
            continue
        i = rng.choice(candidates)
        if attr == "inactive":
            objs[i].is_active = False
            objs[i].name = f"{objs[i].name} (discontinued)"
            summary.inactive.append(objs[i].sku)
        else:
            objs[i].stock = 0
            summary.out_of_stock.append(objs[i].sku)


def clear_shop() -> None:
    """Delete every product, order, purchase, build and demo customer (for ``--reset``)."""
    with transaction.atomic():
        OrderLine.objects.all().delete()
        Order.objects.all().delete()
        Recommendation.objects.all().delete()
        Build.objects.all().delete()
        PendingUpdate.objects.all().delete()
        Purchase.objects.all().delete()
        Product.objects.all().delete()
        get_user_model().objects.filter(
            email__endswith="@example.com", is_staff=False, password="!demo"
        ).delete()


def give_history(user_pk: int, now: datetime | None = None) -> int:
    """Give a (demo admin) user two past orders, so "recommended for you" has something to
    go on; returns how many purchases were written."""
    now = now or timezone.now()
    picks = []
    for path in ("Photo > Cameras", "Coffee > Beans"):
        pk = (
            Product.objects.filter(category=path, is_active=True)
            .order_by("pk")
            .values_list("pk", "price")
            .first()
        )
        if pk:
            picks.append(pk)
    rows = [
        Purchase(
            order_ref=f"ADMIN-{n}",
            customer_ref=str(user_pk),
            product_id=pid,
            unit_price=price,
            purchased_at=now - timedelta(days=20 * (n + 1)),
        )
        for n, (pid, price) in enumerate(picks)
    ]
    Purchase.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def digest() -> int:
    """A fingerprint of the shop's catalog and purchases (for determinism checks)."""
    User = get_user_model()
    names = dict(User.objects.values_list("pk", "username"))
    parts = [
        "|".join(
            f"{s}:{n}:{c}:{p}:{a}:{st}"
            for s, n, c, p, a, st in Product.objects.order_by("sku").values_list(
                "sku", "name", "category", "price", "is_active", "stock"
            )
        ),
        "|".join(
            f"{o}:{s}:{q}:{names.get(int(c)) if c else ''}"
            for o, s, q, c in Purchase.objects.order_by("order_ref", "product__sku").values_list(
                "order_ref", "product__sku", "quantity", "customer_ref"
            )
        ),
    ]
    return zlib.crc32("#".join(parts).encode())
