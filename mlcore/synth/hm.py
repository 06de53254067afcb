"""Synthetic H&M Personalized Fashion Recommendations deliveries (the Kaggle competition's files).

A delivery is written under ``<out>/raw/hm/ds=<ds>/``: ``articles.csv``, ``customers.csv`` and
``transactions_train.csv``, formatted as Kaggle ships them (see ``../shared/data/README.md``, hm/):

* ``transactions_train.csv``: ``t_dat,customer_id,article_id,price,sales_channel_id``; t_dat
  ``YYYY-MM-DD``, customer_id 64 lowercase hex characters, article_id 10 digits with a leading
  zero (``0108775015``: the 7-digit product_code ``0108775`` and a 3-digit variant), the price in
  SEK/590 written with up to 16 decimals (``0.0508305084745762`` is 29.99 SEK: the SEK amount over
  590, truncated; the real file matches this on 98% of its distinct prices), sales_channel_id 1
  (store) or 2 (online). Rows are ordered by t_dat, and within a day grouped by customer in
  customer_id order, each customer's rows in the order of the trip.
* ``articles.csv``: the 25 real columns in the real order, ordered by article_id; product_code
  with its leading zero, colour_group_code on 2 digits (``09``), the real codes and names of
  product types, departments, indexes, sections, garment groups, colours and appearances, and a
  free-text detail_desc (quoted when it holds a comma; empty for about 0.4% of products).
* ``customers.csv``: ``customer_id,FN,Active,club_member_status,fashion_news_frequency,age,
  postal_code`` ordered by customer_id; FN and Active ``1.0`` or empty, age an integer.

``pandas=True`` writes the files as they look after a pandas round trip (the repository's real
head sample): ids and codes without leading zeros, age ``49.0``, articles.csv with an unnamed index
column first, and prices as Python writes the float.

How the data are made:

* The universe (articles, customers and their tastes) depends only on ``(seed, customers,
  articles)``. The catalogue is a cycle of ``CYCLE_WEEKS`` weeks of weekly collections: every
  product is launched in one week of the cycle (absolute weeks since ``EPOCH``, modulo the
  cycle), so any two years hold each article's launch once. A product (about 2.2 variants, as
  Kaggle's 105,542 articles in 47,224 product codes) has a department (which fixes its index,
  index group, section and garment group as in the real catalogue), a product type of that
  department, a price (the type's typical SEK price, varied and set to H&M's price points
  ``x9.99``), a name and a description; its variants differ in colour (and sometimes pattern or
  price). About 8% of products are evergreen basics with the oldest product codes. A smaller
  catalogue has fewer departments (``ARTICLES_PER_DEPARTMENT``; all 132 from 8,000 articles).
* Popularity is heavy-tailed and moves fast: a log-normal base per product, split unevenly between
  its variants, times a life curve that rises from the launch to a peak after days to weeks and
  then decays (an article sells for weeks to months), times a season (summer types such as
  swimwear, shorts and sandals peak in late June, winter types such as coats, boots and knitwear
  in December). The tail is heaviest at Kaggle's size and lighter in a smaller catalogue, so that a
  week's top 12 take a few percent of its sales at full size (Kaggle: about 3.5%) and not a third
  of them in a catalogue of 2,000. Sales per day follow the week (Fridays and Saturdays busiest),
  the year (a summer high, a winter low) and Black Friday, the Christmas days and the summer and
  winter sales. About 15% of taste draws follow the day's bestsellers (trends).
* Customers have an age (the real two-humped distribution: students and parents), and six age
  buckets prefer different index groups (Divided at 16-22, Baby/Children at 30-49, Ladieswear and
  lingerie over 50), hence different departments, sections and product types; each customer also
  has three favourite departments (drawn from the bucket's taste) that take a personal share of
  their purchases.
* Activity is heavy-tailed (log-normal), and customers are engaged only in some four-week periods
  (a per-customer share), so many are inactive for months and about 13% buy nothing in two years
  (0.5% never do); PRE-CREATE members buy less. About 70% of rows are online: each customer mostly
  shops in one channel (a trip is online or in a store), and 3% of articles are sold online only.
* A day's purchases are trips (baskets of one to tens of articles, about 3.4 rows a customer-day
  as in the real file). A trip's first article comes from the customer's taste or wardrobe; the
  others are other colours of that product, its companion (an article of the same collection in
  the partner department, say a top and trousers), articles of the same or the partner department,
  wardrobe articles or fresh taste draws. Buying two or more of one article writes exact duplicate
  rows (about 9% of rows, as the real head sample's 910 of 10,000).
* Repurchase: each customer has a wardrobe of up to six slots, each renewed every six weeks
  (staggered), holding an article that the customer buys again and again while the slot lasts
  (sometimes in another colour of the same product). Together with product-code siblings,
  companions, age-bucket popularity and trends, this makes the next week's purchases partly
  predictable from the history, not trivially (Kaggle's MAP@12: last week's top 12 about 0.021,
  strong models 0.03-0.04). On the last week of a delivery at scale 0.1 (0.02), last week's top
  12 scores a MAP@12 of about 0.015 (0.04), the customer's recent purchases filled with their age
  bucket's bestsellers about 0.035 (0.05), and adding the other colours of those purchases and the
  bestsellers of the customer's own departments about 0.06 (0.08).
* Prices: the article's price, a sale price (about half) when an article past its peak is sold in
  the summer or winter sales, and member prices (10% off) on some trips.
* Each calendar day's transactions depend only on ``(seed, customers, articles, day)``: they are
  drawn from the day's own random stream and from hashes of (customer, slot, period), never from
  the days before. So a history delivery of day D and an increment (``days_only=1``) of day D+1
  continue each other, and overlapping deliveries agree on the days they share.
* ``defects=True`` adds the real deliveries' quirks at the rates of ``DEFECT_RATES`` per row,
  from per-day streams, and each kind at least once on the delivery's last day: an article_id
  absent from articles.csv, a customer_id absent from customers.csv, a malformed line (a row cut
  short), a price of 0 or below, a sales_channel_id of 3, and a t_dat after ``ds`` (up to two
  months). Only the clean rows are the same in every delivery that holds their day: the forced
  defects of the last day and the future dates depend on the delivery's ``ds``.

Transactions are drawn one day at a time with vectorised numpy and written one week at a time by
Arrow string kernels on a second thread, so memory stays bounded: scale 0.1 (3.2M rows, 340 MB)
takes about 9 s and 240 MB; the full Kaggle size (1.37M customers, 105,542 articles, 104 weeks,
about 31.8M rows, 3.4 GB) about 7 s for the universe and the snapshots and 0.09 s a day, under
1.5 minutes, in about 0.7 GB. The same arguments give byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import logging
import math
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcore.synth import replacing

log = logging.getLogger(__name__)

SOURCE = "hm"
FILES = ("articles.csv", "customers.csv", "transactions_train.csv")
FULL = {"customers": 1_371_980, "articles": 105_542, "weeks": 104, "transactions": 31_788_324}

EPOCH = dt.date(2018, 9, 20)  # Kaggle's first day; weeks and the catalogue cycle count from it
CYCLE_WEEKS = 104  # the catalogue launches every product once per cycle
CYCLE_DAYS = 7 * CYCLE_WEEKS
# Rows a customer makes a day: Kaggle's 31,788,324 rows of 1,371,980 customers over 728 days.
ROWS_PER_CUSTOMER_DAY = FULL["transactions"] / (FULL["customers"] * CYCLE_DAYS)
ARTICLES_PER_DEPARTMENT = 60  # a smaller catalogue has fewer departments (all at 8,000)
WEEKS_PER_CHUNK = 1  # days drawn, formatted and written at once
LOG_EVERY = 0.1  # share of the days between progress lines


@dataclass(frozen=True)
class Behaviour:
    """How customers shop (the generator's ground truth, for reference)."""

    variants_mean: float = 2.24  # articles per product code (Kaggle: 105,542 / 47,224)
    # log-normal base popularity of products: its sd at Kaggle's size, less by this much per
    # unit of log(catalogue size) in a smaller catalogue (see _popularity_sd)
    popularity_sd: float = 1.6
    popularity_sd_slope: float = 0.32
    variant_concentration: float = 1.5  # Dirichlet alpha of a product's sales over its variants
    peak_days_median: float = 26.0  # days from a launch to the sales peak (log-normal)
    peak_days_sd: float = 0.6
    evergreen_share: float = 0.08  # products that sell all cycle long
    evergreen_level: float = 0.35  # their life curve (a peak is 1)
    season_amplitude: float = 0.9  # log lift of a seasonal type at its season's peak
    online_only_share: float = 0.03
    activity_sd: float = 0.8  # log-normal activity of customers
    never_buy_share: float = 0.005
    engage_weeks: int = 4  # a customer is engaged, or not, per period of this many weeks
    engage_alpha: float = 1.3  # Beta(alpha, beta) share of engaged periods per customer
    engage_beta: float = 1.3
    online_customers: float = 0.74  # customers who mostly shop online (the rest in stores)
    basket_extra_mean: float = 2.05  # articles in a trip beyond the first: negative binomial
    basket_extra_shape: float = 0.8
    basket_max: int = 40
    duplicate_p: float = 0.078  # chance that an article of a trip is bought twice or more
    duplicate_more_p: float = 0.12  # ...then each further copy
    bulk_p: float = 0.01  # ...or 5-20 copies at once
    trend_p: float = 0.15  # share of taste draws made by the day's bestsellers instead
    fav_alpha: float = 4.0  # Beta(alpha, beta) share of purchases from the favourite departments
    fav_beta: float = 2.5
    rep_alpha: float = 2.5  # Beta(alpha, beta) share of purchases from the wardrobe
    rep_beta: float = 4.0
    wardrobe_slots: int = 6  # most slots a customer keeps
    wardrobe_weeks: int = 6  # a slot's article changes every this many weeks
    wardrobe_sibling: float = 0.2  # a wardrobe purchase in another colour of its product
    sibling_p: float = 0.12  # a trip's further article: another colour of its first article
    companion_p: float = 0.10  # ...the first article's companion (an outfit)
    same_dept_p: float = 0.2  # ...otherwise from the first article's department
    partner_dept_p: float = 0.15  # ...or the partner department
    member_discount_p: float = 0.05  # trips paid at the member price (10% off)
    sale_share: float = 0.55  # sale price over the full one (then set to a price point)


MODEL = Behaviour()
FAV_CUM = np.array([0.5, 0.8])  # the three favourite departments take 50%, 30%, 20%

# Defect rates per transaction row (defects=True); each kind also appears at least once on the
# delivery's last day.
DEFECT_RATES = {
    "unknown_article": 2e-5,  # article_id absent from articles.csv
    "unknown_customer": 2e-5,  # customer_id absent from customers.csv
    "malformed_line": 5e-6,  # a line with a field missing
    "bad_price": 1e-5,  # price 0 or negative
    "channel_3": 1e-5,  # sales_channel_id 3
    "future_t_dat": 1e-5,  # t_dat after the delivery's ds
}
N_UNKNOWN = 16  # unknown article and customer ids available to the defects

# --------------------------------------------------------------------------------------------
# The real vocabularies (from the Kaggle files' samples)

INDEXES = {  # index_code: (index_name, index_group_no, index_group_name)
    "A": ("Ladieswear", 1, "Ladieswear"),
    "B": ("Lingeries/Tights", 1, "Ladieswear"),
    "C": ("Ladies Accessories", 1, "Ladieswear"),
    "D": ("Divided", 2, "Divided"),
    "F": ("Menswear", 3, "Menswear"),
    "G": ("Baby Sizes 50-98", 4, "Baby/Children"),
    "H": ("Children Sizes 92-140", 4, "Baby/Children"),
    "I": ("Children Sizes 134-170", 4, "Baby/Children"),
    "J": ("Children Accessories, Swimwear", 4, "Baby/Children"),
    "S": ("Sport", 26, "Sport"),
}
INDEX_CODES = tuple(INDEXES)
SECTIONS = {
    2: "H&M+", 5: "Ladies H&M Sport", 6: "Womens Casual", 8: "Mama", 11: "Womens Tailoring",
    14: "Womens Premium", 15: "Womens Everyday Collection", 16: "Womens Everyday Basics",
    18: "Womens Trend", 19: "Womens Jackets", 20: "Contemporary Smart",
    21: "Contemporary Casual", 23: "Men Suits & Tailoring", 26: "Men Underwear",
    41: "Baby Boy", 42: "Kids & Baby Shoes", 43: "Kids Accessories, Swimwear & D",
    44: "Baby Essentials & Complements", 45: "Kids Outerwear", 46: "Kids Boy", 47: "Young Boy",
    50: "Divided Projects", 51: "Divided Basics", 52: "Divided Accessories",
    53: "Divided Collection", 55: "Contemporary Street", 56: "Denim Men", 57: "Ladies Denim",
    58: "Divided Selected", 60: "Womens Swimwear, beachwear", 61: "Womens Lingerie",
    62: "Womens Nightwear, Socks & Tigh", 64: "Womens Shoes", 65: "Womens Big accessories",
    66: "Womens Small accessories", 72: "Boys Underwear & Basics", 76: "Kids Girl",
    77: "Young Girl", 79: "Girls Underwear & Basics", 82: "Special Collections",
    97: "Collaborations",
}  # fmt: skip
GARMENT_GROUPS = {
    1001: "Unknown", 1002: "Jersey Basic", 1003: "Knitwear", 1005: "Jersey Fancy",
    1006: "Woven/Jersey/Knitted mix Baby", 1007: "Outdoor", 1008: "Dressed", 1009: "Trousers",
    1010: "Blouses", 1011: "Shirts", 1012: "Skirts", 1013: "Dresses Ladies",
    1014: "Dresses/Skirts girls", 1016: "Trousers Denim", 1017: "Under-, Nightwear",
    1018: "Swimwear", 1019: "Accessories", 1020: "Shoes", 1021: "Socks and Tights",
    1023: "Special Offers", 1025: "Shorts",
}  # fmt: skip
# product_type_no, product_type_name, product_group_name, typical price (SEK), season.
PRODUCT_TYPES = (
    (-1, "Unknown", "Unknown", 9.99, ""),
    (57, "Swimsuit", "Swimwear", 17.99, "summer"),
    (59, "Swimwear bottom", "Swimwear", 9.99, "summer"),
    (66, "Bag", "Accessories", 14.99, ""),
    (67, "Belt", "Accessories", 8.99, ""),
    (69, "Cap/peaked", "Accessories", 10.99, ""),
    (70, "Earring", "Accessories", 6.99, ""),
    (71, "Gloves", "Accessories", 7.99, "winter"),
    (72, "Hair clip", "Accessories", 2.49, ""),
    (73, "Hair string", "Accessories", 2.99, ""),
    (74, "Hair/alice band", "Accessories", 4.99, ""),
    (75, "Hat/beanie", "Accessories", 7.99, "winter"),
    (76, "Hat/brim", "Accessories", 11.99, "summer"),
    (77, "Necklace", "Accessories", 7.99, ""),
    (78, "Other accessories", "Accessories", 7.99, ""),
    (79, "Ring", "Accessories", 9.99, ""),
    (80, "Scarf", "Accessories", 9.99, "winter"),
    (81, "Sunglasses", "Accessories", 6.99, "summer"),
    (85, "Watch", "Accessories", 17.99, ""),
    (86, "Ballerinas", "Shoes", 12.99, ""),
    (87, "Boots", "Shoes", 34.99, "winter"),
    (88, "Flip flop", "Shoes", 3.99, "summer"),
    (89, "Other shoe", "Shoes", 34.99, ""),
    (90, "Pumps", "Shoes", 20.99, ""),
    (91, "Sandals", "Shoes", 13.99, "summer"),
    (92, "Heeled sandals", "Shoes", 20.99, "summer"),
    (93, "Slippers", "Shoes", 10.99, "winter"),
    (94, "Sneakers", "Shoes", 19.99, ""),
    (98, "Fine cosmetics", "Cosmetic", 2.99, ""),
    (144, "Flat shoe", "Shoes", 24.99, ""),
    (245, "Cardigan", "Garment Upper body", 17.99, "winter"),
    (252, "Sweater", "Garment Upper body", 13.99, "winter"),
    (253, "Vest top", "Garment Upper body", 7.99, "summer"),
    (254, "Top", "Garment Upper body", 9.99, ""),
    (255, "T-shirt", "Garment Upper body", 4.99, ""),
    (256, "Bodysuit", "Garment Upper body", 13.99, ""),
    (257, "Polo shirt", "Garment Upper body", 12.99, ""),
    (258, "Blouse", "Garment Upper body", 19.99, ""),
    (259, "Shirt", "Garment Upper body", 14.99, ""),
    (262, "Jacket", "Garment Upper body", 39.99, "winter"),
    (263, "Coat", "Garment Upper body", 79.99, "winter"),
    (264, "Blazer", "Garment Upper body", 29.99, ""),
    (265, "Dress", "Garment Full body", 19.99, "summer"),
    (267, "Jumpsuit/Playsuit", "Garment Full body", 19.99, "summer"),
    (268, "Dungarees", "Garment Full body", 16.99, ""),
    (270, "Garment Set", "Garment Full body", 11.99, ""),
    (272, "Trousers", "Garment Lower body", 19.99, ""),
    (273, "Leggings/Tights", "Garment Lower body", 13.99, ""),
    (274, "Shorts", "Garment Lower body", 12.99, "summer"),
    (275, "Skirt", "Garment Lower body", 19.99, ""),
    (283, "Underwear body", "Underwear", 22.99, ""),
    (286, "Underwear bottom", "Underwear", 9.99, ""),
    (293, "Night gown", "Nightwear", 17.99, ""),
    (295, "Pyjama jumpsuit/playsuit", "Nightwear", 7.99, ""),
    (296, "Pyjama bottom", "Nightwear", 9.99, ""),
    (297, "Pyjama set", "Nightwear", 14.99, "winter"),
    (298, "Bikini top", "Swimwear", 14.99, "summer"),
    (302, "Socks", "Socks & Tights", 7.99, ""),
    (304, "Underwear Tights", "Socks & Tights", 6.99, ""),
    (305, "Robe", "Underwear", 21.99, ""),
    (306, "Bra", "Underwear", 14.99, ""),
    (307, "Kids Underwear top", "Underwear", 9.99, ""),
    (308, "Hoodie", "Garment Upper body", 19.99, "winter"),
    (512, "Hair ties", "Accessories", 2.99, ""),
)
TYPE_INDEX = {row[0]: i for i, row in enumerate(PRODUCT_TYPES)}
SEASONS = ("", "summer", "winter")
SEASON_PEAK_DOY = {"summer": 176, "winter": 345}  # late June, mid December

# Departments: department_no, index_code, section_no, garment_group_no, catalogue weight, then
# product_type_no:weight of its product types, and after "|" its department_name.
DEPARTMENTS_TABLE = """
1909 A 2 1010 28 265:11 254:7 258:6 259:4 | Woven top
1919 A 2 1005 51 254:16 255:10 265:7 258:6 272:3 273:2 | Jersey
1939 A 2 1009 22 272:19 275:2 | Woven bottoms
1949 A 2 1003 13 252:10 245:3 | Knitwear
1510 A 6 1010 38 258:19 259:14 254:5 | Blouse
1610 A 6 1003 28 252:23 254:3 245:2 | Knitwear
1660 A 6 1005 92 255:40 252:20 253:11 254:9 272:4 265:4 | Jersey
1710 A 6 1009 31 272:31 | Trouser
2031 A 8 1009 18 272:16 274:2 | Woven bottoms
2032 A 8 1005 27 254:8 255:5 253:5 272:4 265:2 | Jersey
1212 A 11 1008 20 264:20 | Suit
1313 A 11 1013 34 265:34 | Dress
1414 A 11 1012 31 275:31 | Skirt
1515 A 11 1010 67 258:48 259:16 | Blouse
1616 A 11 1003 45 252:32 245:9 | Knitwear
1666 A 11 1005 59 254:20 265:16 255:12 253:6 252:3 | Jersey
1717 A 11 1009 48 272:45 | Trouser
1686 A 14 1013 17 265:11 256:3 | Jersey Occasion
1926 A 14 1013 42 265:14 254:10 258:9 275:3 253:2 267:2 | Woven Occasion
1222 A 15 1008 17 264:16 | Suit jacket
1322 A 15 1013 62 265:58 | Dress
1422 A 15 1012 33 275:33 | Skirt
1522 A 15 1010 102 258:68 259:18 253:13 | Blouse
1626 A 15 1003 137 252:119 245:12 | Knitwear
1636 A 15 1005 118 254:60 252:24 255:11 253:8 272:6 273:5 | Jersey fancy
1722 A 15 1009 123 272:118 | Trouser
1723 A 15 1025 16 274:16 | Shorts
3090 A 15 1023 26 258:9 252:5 272:4 265:3 257:2 | Campaigns
1646 A 16 1003 65 252:45 245:17 | Knitwear Basic
1676 A 16 1002 172 255:57 265:28 252:19 253:16 254:14 273:8 | Jersey Basic
1641 A 18 1005 49 255:10 252:8 254:7 265:7 256:6 272:5 | Jersey
1648 A 18 1003 19 252:9 245:4 253:4 | Knitwear
1941 A 18 1010 28 258:19 265:7 259:2 | Blouse & Dress
1948 A 18 1009 14 272:11 275:3 | Trousers & Skirt
1201 A 19 1007 82 262:52 263:28 | Outwear
1774 A 57 1016 12 272:12 | OL Extended Sizes
1779 A 57 1016 14 272:10 259:2 | Everyday Waredrobe Denim
3708 A 62 1017 12 252:11 | Loungewear
2080 A 82 1001 19 252:4 255:3 265:2 259:2 | Studio Collection
3080 A 97 1001 18 254:5 252:4 265:2 272:2 | Take Care External
4242 B 60 1018 143 298:61 59:57 57:23 | Swimwear
1334 B 61 1017 84 286:56 306:28 | Casual Lingerie
1338 B 61 1017 207 306:133 286:58 283:14 | Expressive Lingerie
1339 B 61 1017 18 286:9 306:7 -1:2 | Clean Lingerie
3710 B 61 1017 19 306:14 286:3 283:2 | Functional Lingerie
3608 B 62 1021 40 304:29 273:11 | Tights basic
3611 B 62 1021 27 302:26 | Shopbasket Socks
3709 B 62 1017 52 297:23 296:17 293:7 305:5 | Nightwear
3040 C 64 1020 27 90:8 87:6 94:4 89:3 144:2 91:2 | Premium Quality
3527 C 64 1020 26 91:11 86:6 144:6 89:2 | Flats
3528 C 64 1020 19 90:9 92:6 89:3 | Heels
3529 C 64 1020 35 87:34 | Boots
3828 C 64 1020 14 94:13 | Sneakers
1920 C 65 1019 20 66:19 | Small Bags
3209 C 65 1019 28 66:28 | Bags
3409 C 65 1019 33 80:33 | Scarves
3509 C 65 1019 25 67:25 | Belts
3519 C 65 1019 20 75:12 76:3 71:2 69:2 | Gloves/Hats
3419 C 66 1019 18 78:12 85:4 | Other items
4343 C 66 1019 25 74:8 73:5 72:4 512:4 78:4 | Hair Accessories
4344 C 66 1019 67 70:30 77:28 79:6 | Jewellery
4345 C 66 1019 15 70:10 79:3 | Jewellery Extended
1343 D 50 1013 26 265:26 | Projects Dresses
1644 D 50 1005 20 252:11 253:4 255:3 245:2 | Projects Jersey & Knitwear
1652 D 50 1001 19 254:4 262:4 252:3 265:2 255:2 | Divided+
1743 D 50 1009 14 275:7 272:4 274:3 | Projects Woven Bottoms
4092 D 50 1001 12 265:7 258:3 | Read & React
1643 D 51 1002 139 255:37 254:22 252:21 265:17 253:14 308:11 | Basic 1
3937 D 51 1017 30 286:21 302:8 | UW
3929 D 52 1020 31 87:14 91:5 88:4 94:3 144:2 86:2 | Divided Shoes
3944 D 52 1019 20 66:16 67:4 | Bags
3945 D 52 1019 35 75:13 80:10 69:6 76:3 78:2 | Knit & Woven
3946 D 52 1019 22 70:7 73:5 81:5 74:4 | Small Accessories
1244 D 53 1007 44 262:23 263:8 308:7 264:5 | Outdoor/Blazers
1344 D 53 1013 106 265:90 267:16 | Dresses
1444 D 53 1012 43 275:43 | Skirts
1543 D 53 1010 64 259:29 258:29 253:5 | Tops Woven
1640 D 53 1005 136 255:50 252:50 308:15 253:14 254:7 | Tops Fancy Jersey
1647 D 53 1003 132 252:100 245:27 | Tops Knitwear
1747 D 53 1009 100 272:93 | Trousers
1772 D 57 1016 98 272:98 | Denim Trousers
1773 D 57 1016 23 275:7 274:6 265:4 259:4 | Denim Other Garments
5961 D 58 1013 16 265:13 272:2 | Dresses DS
5962 D 58 1005 28 245:7 255:6 272:3 254:3 265:3 253:2 | Jersey Fancy DS
5963 D 58 1003 16 252:14 245:2 | Tops Knitwear DS
5686 F 20 1009 12 272:12 | Trouser
5828 F 20 1005 21 252:12 255:8 | Jersey Fancy
5878 F 20 1003 20 252:20 | Knitwear
5848 F 21 1005 16 308:6 252:4 255:3 257:3 | Jersey Fancy
5831 F 23 1003 14 252:8 257:3 245:2 | Knitwear
8617 F 23 1011 17 259:17 | Shirt S&T
5832 F 26 1002 18 255:11 257:3 253:2 254:2 | Light Basic Jersey
5868 F 26 1002 38 308:12 255:12 252:8 254:3 | Basics
5883 F 26 1002 25 255:10 308:7 272:5 254:2 | Jersey Basic
7188 F 26 1021 17 302:17 | Socks Bin
5882 F 55 1005 21 308:7 255:6 252:4 272:2 | Jersey Fancy
5957 F 55 1005 12 255:8 245:2 | Jersey inactive from s1
5672 F 56 1016 30 272:30 | Denim trousers
6545 G 41 1005 26 272:10 255:6 270:5 252:4 | Baby Boy Jersey Fancy
6565 G 41 1006 17 272:12 270:3 259:2 | Baby Boy Woven
2950 G 44 1019 15 75:5 76:3 80:2 78:2 | Baby Toys/Acc
6515 G 44 1002 32 256:9 267:7 255:6 272:4 252:3 | Baby basics
6541 G 44 1021 17 302:10 304:6 | Baby Socks
6557 G 44 1006 15 267:3 80:2 245:2 268:2 | Baby Exclusive
6563 G 44 1017 12 295:9 | Baby Nightwear
6564 G 44 1005 26 270:9 256:7 272:5 265:2 | Newborn
7648 H 46 1005 43 255:17 252:11 272:6 308:6 253:2 | Kids Boy Jersey Fancy
7656 H 46 1009 12 272:12 | Kids Boy Trouser
7658 H 46 1003 13 252:11 245:2 | Kids Boy Knitwear
7956 H 46 1016 18 272:17 | Kids Boy Denim
7668 H 72 1002 15 272:8 308:3 255:2 | Kids Boy Jersey Basic
7613 H 76 1014 25 265:14 258:5 275:4 | Kids Girl Dresses
7616 H 76 1005 65 255:15 265:13 252:7 270:6 272:5 254:5 | Kids Girl Jersey Fancy
7618 H 76 1003 23 252:11 245:6 265:4 | Kids Girl Knitwear
7917 H 76 1016 14 272:9 268:4 | Kids Girl Denim
7920 H 79 1002 31 255:11 273:7 272:4 265:4 252:3 | Kids Girl Jersey Basic
7922 H 79 1017 12 297:5 253:3 286:2 | Kids Girl UW/NW
8852 I 45 1007 12 262:11 | Young Boy Outdoor
8748 I 47 1005 60 255:23 308:16 252:12 272:9 | Young Boy Jersey Fancy
8956 I 47 1016 37 272:33 274:4 | Young Boy Denim
8768 I 72 1002 25 308:10 255:4 272:4 252:4 253:2 | Young Boy Jersey Basic
8713 I 77 1014 17 258:6 259:6 275:2 267:2 | Young Girl Dresses
8716 I 77 1005 84 252:26 255:19 273:16 254:15 265:4 | Young Girl Jersey Fancy
8917 I 77 1016 29 272:22 268:5 | Young Girl Denim
7930 I 79 1002 31 255:8 308:8 273:5 272:3 254:2 253:2 | Young Girl Jersey Basic
7932 I 79 1017 23 286:9 307:8 297:5 | Young Girl UW/NW
4211 J 42 1020 17 94:13 87:2 | Kids Boy Shoes
4311 J 42 1020 14 87:5 91:3 93:2 94:2 86:2 | Kids Girl Shoes
4313 J 43 1019 21 74:6 73:4 72:3 78:3 98:2 | Girls Small Acc/Bags
8310 S 5 1005 60 273:53 | Ladies Sport Bottoms
8316 S 5 1005 107 253:32 306:27 255:22 252:16 308:6 254:4 | Ladies Sport Bras
8396 S 5 1019 15 57:3 302:3 298:2 59:2 71:2 | Ladies Sport Acc
"""


@dataclass(frozen=True)
class Department:
    no: int
    name: str
    index_code: str
    section_no: int
    garment_group_no: int
    weight: float
    types: tuple[int, ...]  # indices into PRODUCT_TYPES
    type_weights: tuple[float, ...]


def _departments() -> tuple[Department, ...]:
    out = []
    for line in DEPARTMENTS_TABLE.strip().splitlines():
        fields, name = line.split(" | ")
        no, index_code, section, garment, weight, *types = fields.split()
        pairs = [t.rsplit(":", 1) for t in types]
        out.append(
            Department(
                no=int(no),
                name=name,
                index_code=index_code,
                section_no=int(section),
                garment_group_no=int(garment),
                weight=float(weight),
                types=tuple(TYPE_INDEX[int(t)] for t, _ in pairs),
                type_weights=tuple(float(w) for _, w in pairs),
            )
        )
    return tuple(out)


DEPARTMENTS = _departments()

COLOUR_VALUES = {
    -1: "Unknown", 1: "Dusty Light", 2: "Medium Dusty", 3: "Light", 4: "Dark", 5: "Bright",
    6: "Undefined", 7: "Medium",
}  # fmt: skip
COLOUR_MASTERS = {
    -1: "Unknown", 1: "Mole", 2: "Blue", 3: "Orange", 4: "Pink", 5: "Black", 6: "Lilac Purple",
    7: "Turquoise", 8: "Yellow", 9: "White", 11: "Beige", 12: "Grey", 13: "Brown",
    14: "undefined", 15: "Metal", 18: "Red", 19: "Green", 20: "Khaki green",
}  # fmt: skip
# colour_group_code, colour_group_name, perceived value id, perceived master id, weight.
COLOURS = (
    (9, "Black", 4, 5, 1750), (73, "Dark Blue", 4, 2, 626), (10, "White", 3, 9, 540),
    (51, "Light Pink", 1, 4, 264), (72, "Blue", 2, 2, 239), (7, "Grey", 1, 12, 238),
    (71, "Light Blue", 1, 2, 188), (43, "Dark Red", 4, 18, 168), (8, "Dark Grey", 4, 12, 168),
    (42, "Red", 7, 18, 154), (19, "Greenish Khaki", 4, 20, 146), (12, "Light Beige", 1, 11, 138),
    (6, "Light Grey", 1, 12, 117), (13, "Beige", 2, 11, 112), (11, "Off White", 1, 9, 109),
    (93, "Dark Green", 4, 19, 104), (52, "Pink", 2, 4, 91), (22, "Yellow", 7, 8, 90),
    (31, "Light Orange", 1, 3, 64), (17, "Yellowish Brown", 2, 13, 51), (5, "Gold", 5, 15, 51),
    (53, "Dark Pink", 4, 4, 51), (81, "Light Turquoise", 1, 7, 40), (92, "Green", 1, 19, 35),
    (83, "Dark Turquoise", 4, 7, 34), (3, "Silver", 3, 15, 30), (14, "Dark Beige", 2, 11, 29),
    (33, "Dark Orange", 2, 3, 26), (50, "Other Pink", 5, 4, 25), (21, "Light Yellow", 3, 8, 24),
    (32, "Orange", 5, 3, 22), (63, "Dark Purple", 4, 6, 20), (23, "Dark Yellow", 2, 8, 19),
    (91, "Light Green", 3, 19, 17), (82, "Turquoise", 1, 7, 14), (1, "Other", 6, 14, 11),
    (41, "Light Red", 7, 18, 9), (61, "Light Purple", 1, 6, 9), (15, "Greyish Beige", 4, 1, 7),
    (40, "Other Red", 5, 18, 7), (62, "Purple", 2, 6, 5), (70, "Other Blue", 5, 2, 4),
    (30, "Other Orange", 5, 3, 4), (20, "Other Yellow", 5, 8, 3), (2, "Transparent", 3, 9, 3),
    (90, "Other Green", 5, 19, 3), (60, "Other Purple", 5, 6, 3), (-1, "Unknown", -1, -1, 2),
    (4, "Bronze/Copper", 2, 15, 1),
)  # fmt: skip
APPEARANCES = (
    (1010016, "Solid", 2994), (1010001, "All over pattern", 688), (1010010, "Melange", 428),
    (1010023, "Denim", 371), (1010017, "Stripe", 310), (1010014, "Placement print", 149),
    (1010008, "Front print", 146), (1010004, "Check", 135), (1010021, "Lace", 119),
    (1010005, "Colour blocking", 104), (1010026, "Other structure", 61),
    (1010007, "Embroidery", 52), (1010018, "Treatment", 51), (1010002, "Application/3D", 38),
    (1010020, "Contrast", 35), (1010022, "Jacquard", 33), (1010006, "Dot", 28),
    (1010012, "Mixed solid/pattern", 26), (1010009, "Glittering/Metallic", 24),
    (1010013, "Other pattern", 22), (1010015, "Sequin", 15), (1010011, "Metallic", 11),
    (1010024, "Chambray", 9), (1010027, "Neps", 7), (1010019, "Transparent", 3),
    (1010025, "Slub", 3), (-1, "Unknown", 2), (1010003, "Argyle", 1),
)  # fmt: skip

# Ages 16 to 99 in two-year bins from 16 (the real samples: a peak at 21-26, another at 48-54).
AGE_SHARES = np.array(
    [0.0063, 0.0397, 0.08, 0.0786, 0.0872, 0.0799, 0.0677, 0.0608, 0.0438, 0.0302, 0.0283]
    + [0.0224, 0.0256, 0.0257, 0.0289, 0.0307, 0.0417, 0.0443, 0.0406, 0.0319, 0.0277, 0.0195]
    + [0.015, 0.0112, 0.0093, 0.0061, 0.0045, 0.0038, 0.0034, 0.0016, 0.0014, 0.001, 0.0005]
    + [0.0001, 0.0003, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001, 0.0001]
)
AGE_BUCKETS = np.array([23, 30, 40, 50, 60])  # 16-22, 23-29, 30-39, 40-49, 50-59, 60+
# Affinity of each age bucket (rows) for each index (columns, INDEX_CODES order A..S).
INDEX_AFFINITY = np.array(
    [
        [0.7, 0.8, 1.3, 3.0, 1.1, 0.15, 0.15, 0.2, 0.3, 1.0],
        [1.0, 1.0, 1.1, 1.6, 1.3, 0.9, 0.4, 0.2, 0.6, 1.1],
        [1.1, 1.0, 0.9, 0.6, 1.4, 1.6, 1.7, 0.8, 1.1, 1.0],
        [1.2, 1.1, 0.9, 0.45, 1.5, 0.6, 1.4, 1.8, 1.2, 0.9],
        [1.5, 1.5, 1.0, 0.35, 1.5, 0.6, 0.6, 0.7, 0.5, 0.7],
        [1.6, 1.7, 1.0, 0.25, 1.4, 0.9, 0.8, 0.5, 0.5, 0.4],
    ]
)
# Null and value shares of customers.csv (Kaggle's full file).
CLUB_STATUS = (("ACTIVE", 0.9257), ("PRE-CREATE", 0.0699), ("LEFT CLUB", 0.0003), ("", 0.0041))
FN_SHARE = 0.348  # FN = 1.0 (else empty); Active = 1.0 for 97.3% of them, never without FN
ACTIVE_GIVEN_FN = 0.973
AGE_NULL = 0.0116
DEFAULT_POSTAL_SHARE = 0.066  # one postal code held by many customers (a default)

# Words for names and descriptions.
NAME_WORDS = (
    "Jade", "Luna", "Tilly", "Pola", "Cusco", "Ava", "Bella", "Nora", "Ellie", "Ivy", "Mia",
    "Zoe", "Lola", "Ruby", "Stella", "Alva", "Saga", "Elsa", "Vera", "Tova", "Wilma", "Ines",
    "Hanna", "Mira", "Sofia", "Cleo", "Dana", "Frida", "Greta", "Juno", "Kira", "Lina", "Maja",
    "Nova", "Olga", "Pia", "Rita", "Selma", "Tess", "Ulla", "Vida", "Alex", "Ben", "Carl",
    "Dylan", "Erik", "Felix", "Gus", "Hugo", "Isak", "Jack", "Leo", "Max", "Nils", "Oscar",
    "Pelle", "Rex", "Sam", "Theo", "Viggo", "Billie", "Charlie", "Robin", "Kim", "Sunny",
    "Marble", "Tiger", "Bamboo", "Cloud", "Daisy", "Fern", "Honey", "Maple", "Pebble", "Sky",
)  # fmt: skip
STYLE_WORDS = (
    "", "", "", "HW", "slim", "wide", "oversized", "basic", "soft", "seamless", "fancy",
    "cropped", "relaxed", "skinny", "loose", "padded", "ribbed", "linen", "denim", "knit",
    "printed", "striped", "2-pack", "3-pack", "5p", "OP", "SS", "LS", "HS", "push",
)  # fmt: skip
FABRICS = (
    "soft cotton jersey", "a fine-knit cotton blend", "woven fabric", "washed stretch denim",
    "sweatshirt fabric with a soft brushed inside", "microfibre", "a viscose weave",
    "ribbed jersey", "airy linen", "thick knit containing some wool", "recycled polyester",
    "satin", "soft fleece", "lyocell", "lace", "organic cotton", "faux leather", "chiffon",
)  # fmt: skip
FEATURES = (
    "a round neckline", "long sleeves", "short sleeves", "an elasticated waist",
    "side pockets", "a concealed zip", "narrow adjustable shoulder straps", "dropped shoulders",
    "ribbing around the neckline, cuffs and hem", "a V-neck", "a wide hem",
    "a zip fly and button", "a drawstring hood", "a button placket", "a high waist",
    "straight legs", "tapered legs", "a rounded hem", "a lined gusset", "a fitted waist",
    "buttons down the front", "a collar", "a flared skirt", "welt back pockets",
    "a hook-and-eye fastening at the back", "an adjustable strap", "moulded cups",
)  # fmt: skip
ENDINGS = ("", "", "", " Unlined.", " Regular fit.", " Loose fit.", " Slim fit.", " Lined.")


def shape_for(scale: float) -> dict[str, int]:
    """Customers, articles and weeks of a delivery at ``scale`` of Kaggle's (1.0: the full
    size): customers and articles grow linearly (at least 200 articles), weeks stay 104."""
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    return {
        "customers": max(1, round(FULL["customers"] * scale)),
        "articles": max(200, round(FULL["articles"] * scale)),
        "weeks": FULL["weeks"],
    }


def write_delivery(
    out: str | Path,
    ds: dt.date | str,
    *,
    seed: int = 0,
    customers: int = 10_000,
    articles: int = 2_000,
    weeks: int = 104,
    days_only: int = 0,
    pandas: bool = False,
    defects: bool = False,
) -> dict[str, int]:
    """Write <out>/raw/hm/ds=<ds>/{articles,customers,transactions_train}.csv; return lines per
    file (data rows).

    The transactions cover the ``weeks`` weeks ending on ``ds`` (t_dat in ``[ds - 7*weeks + 1,
    ds]``), or with ``days_only=K`` only their last K days (a nightly increment); articles and
    customers are always the full snapshots. Each file is written under a temporary name and
    renamed when complete.
    """
    ds = dt.date.fromisoformat(ds) if isinstance(ds, str) else ds
    if customers < 1 or articles < 12 or weeks < 1 or seed < 0:
        raise ValueError(
            "need customers >= 1, articles >= 12, weeks >= 1 and seed >= 0, got "
            f"customers={customers}, articles={articles}, weeks={weeks}, seed={seed}"
        )
    if not 0 <= days_only <= 7 * weeks:
        raise ValueError(f"days_only must be in [0, 7 * weeks = {7 * weeks}], got {days_only}")
    folder = Path(out) / "raw" / SOURCE / f"ds={ds.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    universe = build_universe(seed, customers, articles)
    n_days = days_only or 7 * weeks
    days = [ds - dt.timedelta(days=n_days - 1 - i) for i in range(n_days)]
    return {
        "articles.csv": _write_articles(folder / "articles.csv", universe, pandas),
        "customers.csv": _write_customers(folder / "customers.csv", universe, pandas),
        "transactions_train.csv": _write_transactions(
            folder / "transactions_train.csv", universe, days, pandas, defects
        ),
    }


def _rng(seed: int, purpose: str, *extra: int) -> np.random.Generator:
    """An independent generator per purpose (and day), so streams never shift each other."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, zlib.crc32(purpose.encode()), *extra])
    )


def _salt(seed: int, purpose: str) -> np.uint64:
    state = np.random.SeedSequence([seed, zlib.crc32(purpose.encode())]).generate_state(2)
    return np.uint64((int(state[0]) << 32) | int(state[1]))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of uint64 values."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _hash_uniform(salt: np.uint64, *keys: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) per entry, a function of (salt, keys) only: the randomness of a
    customer's wardrobe and engagement, the same whatever day or delivery asks for it."""
    h = np.full(np.shape(keys[0]), salt, dtype=np.uint64)
    for key in keys:
        h = _mix((h + _GOLDEN) ^ np.asarray(key).astype(np.int64).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _week(ordinal: int) -> int:
    return (ordinal - EPOCH.toordinal()) // 7


# --------------------------------------------------------------------------------------------
# The universe


@dataclass(eq=False)  # compared by identity: holds a cache
class Universe:
    seed: int
    # products, in product_code order
    product_code: np.ndarray  # int64, 7 digits at most
    product_first: np.ndarray  # index of the product's first article
    product_variants: np.ndarray
    product_name: list[str]
    product_desc: list[str | None]
    # articles, in article_id order
    article_id: np.ndarray  # int64: product_code * 1000 + variant suffix
    product: np.ndarray  # product index of each article
    variant: np.ndarray  # position among the product's variants
    dept: np.ndarray  # index into DEPARTMENTS
    ptype: np.ndarray  # index into PRODUCT_TYPES
    colour: np.ndarray  # index into COLOURS
    appearance: np.ndarray  # index into APPEARANCES
    name_suffix: np.ndarray  # bool: prod_name gets " (1)"
    price: np.ndarray  # int64 cents of SEK
    sale_price: np.ndarray
    online_only: np.ndarray  # bool
    base: np.ndarray  # float64 base popularity
    launch: np.ndarray  # int64 day of the cycle the article is launched
    peak: np.ndarray  # float64 days from the launch to the sales peak
    evergreen: np.ndarray  # bool
    season: np.ndarray  # index into SEASONS
    companion: np.ndarray  # an article often bought with it
    by_dept: np.ndarray  # article indices sorted by department
    dept_lo: np.ndarray  # per department, its range in by_dept
    dept_hi: np.ndarray
    partner: np.ndarray  # per department, the department bought with it
    # customers, in customer_id order
    customer_hex: pa.Array  # string
    age: np.ndarray  # int64 (the latent age, also of those written empty)
    age_null: np.ndarray
    fn: np.ndarray  # bool
    active: np.ndarray
    club: np.ndarray  # index into CLUB_STATUS
    news: np.ndarray  # index into NEWS
    postal: np.ndarray  # index into postal_hex
    postal_hex: pa.Array
    bucket: np.ndarray  # age bucket
    activity_cum: np.ndarray  # cumulative activity weights
    engage_q: np.ndarray  # share of engaged periods
    engage_mean: float  # activity-weighted mean of engage_q
    p_online: np.ndarray
    p_fav: np.ndarray
    fav: np.ndarray  # (customers, 3) favourite departments
    p_rep: np.ndarray
    slots: np.ndarray  # wardrobe slots in use
    bucket_cum: np.ndarray  # (buckets * departments) cumulative taste, bucket b offset by b
    dept_fix: np.ndarray  # per department, itself if in the catalogue, else the largest one
    salts: dict[str, np.uint64]
    _popularity: dict[int, tuple] = field(default_factory=dict)

    @property
    def customers(self) -> int:
        return len(self.age)

    @property
    def articles(self) -> int:
        return len(self.article_id)


NEWS = ("NONE", "Regularly", "Monthly", "None", "")


@functools.lru_cache(maxsize=2)
def build_universe(seed: int, customers: int, articles: int) -> Universe:
    """Articles, customers and their tastes: a function of (seed, customers, articles) only."""
    cat = _catalogue(seed, articles)
    people = _customers(seed, customers, cat["present"])
    salts = {p: _salt(seed, p) for p in ("engage", "wardrobe", "ids")}
    return Universe(seed=seed, **cat["fields"], **people, salts=salts)


def _catalogue(seed: int, n_articles: int) -> dict:
    """The products and their articles (variants)."""
    m = MODEL
    rng = _rng(seed, "products", n_articles)
    # variants per product: 1 + geometric, trimmed so that the articles add up to n_articles
    variants = np.minimum(rng.geometric(1 / m.variants_mean, size=n_articles), 30)
    n_products = int(np.searchsorted(np.cumsum(variants), n_articles)) + 1
    variants = variants[:n_products].copy()
    variants[-1] -= int(variants.sum()) - n_articles
    n_dept = len(DEPARTMENTS)
    dept_w = np.array([d.weight for d in DEPARTMENTS]) * _departments_used(rng, n_articles)
    dept = rng.choice(n_dept, size=n_products, p=dept_w / dept_w.sum())
    ptype = np.empty(n_products, dtype=np.int64)
    for i, d in enumerate(DEPARTMENTS):
        at = np.flatnonzero(dept == i)
        w = np.array(d.type_weights)
        ptype[at] = np.array(d.types)[rng.choice(len(w), size=at.size, p=w / w.sum())]
    evergreen = rng.random(n_products) < m.evergreen_share
    launch_week = rng.integers(0, CYCLE_WEEKS, size=n_products)
    launch = 7 * launch_week + rng.integers(0, 7, size=n_products)
    peak = np.exp(rng.normal(np.log(m.peak_days_median), m.peak_days_sd, size=n_products))
    base = np.exp(rng.normal(0, _popularity_sd(n_articles), size=n_products))
    typical = np.array([t[3] for t in PRODUCT_TYPES])[ptype]
    price = _price_point(typical * np.exp(rng.normal(0, 0.35, size=n_products)))
    season = np.array([SEASONS.index(t[4]) for t in PRODUCT_TYPES])[ptype]
    # product codes: distinct, the evergreen basics the oldest, the others in launch order
    top = max(960_000, 108_000 + 4 * n_products)
    if top >= 10_000_000:
        raise ValueError(f"too many articles for 7-digit product codes: {n_articles}")
    codes = np.sort(rng.choice(np.arange(108_000, top), size=n_products, replace=False))
    order = np.lexsort((rng.random(n_products), np.where(evergreen, -1, launch)))
    code = np.empty(n_products, dtype=np.int64)
    code[order] = codes
    # re-index products in product_code order
    perm = np.argsort(code, kind="stable")
    code, variants, dept, ptype = code[perm], variants[perm], dept[perm], ptype[perm]
    evergreen, launch, peak, base = evergreen[perm], launch[perm], peak[perm], base[perm]
    price, season = price[perm], season[perm]

    # articles
    product = np.repeat(np.arange(n_products), variants)
    first = np.concatenate([[0], np.cumsum(variants)[:-1]])
    variant = np.arange(n_articles) - first[product]
    gaps = np.where(rng.random(n_articles) < 0.6, 1, 1 + rng.geometric(0.25, size=n_articles))
    gaps[variant == 0] = 1
    suffix = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - 1, variants)
    suffix = np.minimum(suffix, 970 + variant)  # 3 digits, increasing
    article_id = code[product] * 1000 + suffix
    colour_w = np.array([c[4] for c in COLOURS], dtype=float)
    colour = rng.choice(len(COLOURS), size=n_articles, p=colour_w / colour_w.sum())
    look_w = np.array([a[2] for a in APPEARANCES], dtype=float)
    own_look = rng.choice(len(APPEARANCES), size=n_products, p=look_w / look_w.sum())
    appearance = np.where(
        rng.random(n_articles) < 0.65,
        own_look[product],
        rng.choice(len(APPEARANCES), size=n_articles, p=look_w / look_w.sum()),
    )
    share = rng.gamma(m.variant_concentration, size=n_articles)
    share /= np.bincount(product, weights=share)[product]
    art_base = base[product] * share
    art_price = price[product].copy()
    own_price = rng.random(n_articles) < 0.2
    art_price[own_price] = _price_point(
        art_price[own_price] / 100 * np.exp(rng.normal(0, 0.15, size=int(own_price.sum())))
    )
    sale_price = _price_point(art_price / 100 * m.sale_share)
    sale_price = np.minimum(sale_price, art_price)
    online_only = rng.random(n_articles) < m.online_only_share
    name_suffix = (variant > 0) & (rng.random(n_articles) < 0.05)

    # department order and partners, companions
    art_dept = dept[product]
    by_dept = np.argsort(art_dept, kind="stable")
    dept_lo = np.searchsorted(art_dept[by_dept], np.arange(n_dept), side="left")
    dept_hi = np.searchsorted(art_dept[by_dept], np.arange(n_dept), side="right")
    present = dept_hi > dept_lo
    partner = _partners(rng, present)
    art_launch = launch[product]
    companion = _companions(rng, art_dept, art_launch, partner, n_dept)

    names, descs = _texts(_rng(seed, "texts", n_articles), ptype)
    return {
        "present": present,
        "fields": {
            "product_code": code,
            "product_first": first,
            "product_variants": variants,
            "product_name": names,
            "product_desc": descs,
            "article_id": article_id,
            "product": product,
            "variant": variant,
            "dept": art_dept,
            "ptype": ptype[product],
            "colour": colour,
            "appearance": appearance,
            "name_suffix": name_suffix,
            "price": art_price,
            "sale_price": sale_price,
            "online_only": online_only,
            "base": art_base,
            "launch": art_launch,
            "peak": peak[product],
            "evergreen": evergreen[product],
            "season": season[product],
            "companion": companion,
            "by_dept": by_dept,
            "dept_lo": dept_lo,
            "dept_hi": dept_hi,
            "partner": partner,
        },
    }


def _popularity_sd(n_articles: int) -> float:
    """The log-sd of base popularity: heavier tails in larger catalogues, so that a week's top
    articles take about Kaggle's share of its sales at any size (a tail as heavy as Kaggle's in
    a catalogue of a few thousand articles would give its top 12 a third of the sales)."""
    m = MODEL
    shrink = m.popularity_sd_slope * max(0.0, math.log(FULL["articles"] / n_articles))
    return max(0.3, m.popularity_sd - shrink)


def _departments_used(rng: np.random.Generator, n_articles: int) -> np.ndarray:
    """Which departments a catalogue of ``n_articles`` has (a 0/1 mask): all of them at full
    size, fewer in a smaller one (about ``ARTICLES_PER_DEPARTMENT`` articles each, the largest
    department of each index first), so that a department holds enough articles at once for
    taste not to name the articles themselves."""
    n = len(DEPARTMENTS)
    want = min(n, max(len(INDEXES), round(n_articles / ARTICLES_PER_DEPARTMENT)))
    weight = np.array([d.weight for d in DEPARTMENTS])
    used = np.zeros(n)
    for code in INDEXES:  # every index keeps its largest department
        mine = [i for i, d in enumerate(DEPARTMENTS) if d.index_code == code]
        used[max(mine, key=lambda i: weight[i])] = 1
    rest = np.flatnonzero(used == 0)
    more = want - int(used.sum())
    if more > 0:
        p = weight[rest] / weight[rest].sum()
        used[rng.choice(rest, size=more, replace=False, p=p)] = 1
    return used


def _price_point(sek: np.ndarray) -> np.ndarray:
    """Cents of the H&M price point nearest ``sek``: whole crowns less one öre (4.99, 9.99),
    by 1 SEK up to 20, by 5 SEK up to 50, by 10 SEK above."""
    sek = np.asarray(sek, dtype=float)
    step = np.where(sek < 20, 1, np.where(sek < 50, 5, 10))
    whole = np.maximum(1, np.round(sek / step) * step)
    return (whole * 100 - 1).astype(np.int64)


def _partners(rng: np.random.Generator, present: np.ndarray) -> np.ndarray:
    """Each department's partner: a department of the same index (else the same index group)
    whose main product group differs (a top's partner sells trousers), by catalogue weight."""
    n = len(DEPARTMENTS)
    group = [PRODUCT_TYPES[d.types[0]][2] for d in DEPARTMENTS]
    index_group = [INDEXES[d.index_code][1] for d in DEPARTMENTS]
    partner = np.arange(n)
    for i, d in enumerate(DEPARTMENTS):
        for same in (
            lambda j, d=d: DEPARTMENTS[j].index_code == d.index_code,
            lambda j, i=i: index_group[j] == index_group[i],
        ):
            options = [j for j in range(n) if present[j] and same(j) and group[j] != group[i]]
            if options:
                w = np.array([DEPARTMENTS[j].weight for j in options])
                partner[i] = options[int(rng.choice(len(options), p=w / w.sum()))]
                break
    return partner


def _companions(rng, art_dept, art_launch, partner, n_dept) -> np.ndarray:
    """An article per article, of the partner department and launched about the same day."""
    companion = np.arange(len(art_dept))
    for d in range(n_dept):
        mine = np.flatnonzero(art_dept == d)
        if not mine.size:
            continue
        theirs = np.flatnonzero(art_dept == partner[d])
        theirs = theirs[np.argsort(art_launch[theirs], kind="stable")]
        at = np.searchsorted(art_launch[theirs], art_launch[mine])
        at = np.clip(at + rng.integers(-2, 2, size=mine.size), 0, theirs.size - 1)
        companion[mine] = theirs[at]
    return companion


def _texts(rng: np.random.Generator, ptype: np.ndarray) -> tuple[list[str], list[str | None]]:
    """prod_name and detail_desc of each product."""
    n = len(ptype)
    names, descs = [], []
    name_i = rng.integers(len(NAME_WORDS), size=n)
    style_i = rng.integers(len(STYLE_WORDS), size=n)
    upper = rng.random(n) < 0.1
    fabric_i = rng.integers(len(FABRICS), size=n)
    feat = rng.integers(len(FEATURES), size=(n, 3))
    n_feat = rng.integers(1, 4, size=n)
    end_i = rng.integers(len(ENDINGS), size=n)
    missing = rng.random(n) < 0.004
    for i in range(n):
        noun = PRODUCT_TYPES[ptype[i]][1]
        words = [NAME_WORDS[name_i[i]], STYLE_WORDS[style_i[i]], noun.split("/")[0].lower()]
        name = " ".join(w for w in words if w)
        names.append(name.upper() if upper[i] else name)
        if missing[i]:
            descs.append(None)
            continue
        parts = [FEATURES[f] for f in dict.fromkeys(feat[i, : n_feat[i]].tolist())]
        with_ = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        desc = f"{noun.split('/')[0]} in {FABRICS[fabric_i[i]]} with {with_}.{ENDINGS[end_i[i]]}"
        descs.append(desc)
    return names, descs


def _hex_ids(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n random 256-bit ids: (bytes (n, 32), their 64-char lowercase hex (n, 64) uint8)."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    text = np.empty((n, 64), dtype=np.uint8)
    text[:, 0::2] = digits[raw >> 4]
    text[:, 1::2] = digits[raw & 15]
    return raw, text


def _fixed_strings(text: np.ndarray) -> pa.Array:
    """An Arrow string array from an (n, width) uint8 matrix of ASCII, without Python strings."""
    n, width = text.shape
    offsets = pa.py_buffer((np.arange(n + 1, dtype=np.int32) * width).tobytes())
    return pa.StringArray.from_buffers(n, offsets, pa.py_buffer(text.tobytes()))


def _customers(seed: int, n: int, present: np.ndarray) -> dict:
    """Customers in customer_id order, with their tastes and habits."""
    m = MODEL
    rng = _rng(seed, "customers", n)
    raw, text = _hex_ids(rng, n)
    words = raw.view(">u8").reshape(n, 4)
    order = np.lexsort(tuple(words[:, k] for k in range(3, -1, -1)))
    text = text[order]
    bins = rng.choice(len(AGE_SHARES), size=n, p=AGE_SHARES / AGE_SHARES.sum())
    age = 16 + 2 * bins + rng.integers(0, 2, size=n)
    age_null = rng.random(n) < AGE_NULL
    bucket = np.searchsorted(AGE_BUCKETS, age, side="right")
    fn = rng.random(n) < FN_SHARE
    active = fn & (rng.random(n) < ACTIVE_GIVEN_FN)
    club_p = np.array([p for _, p in CLUB_STATUS])
    club = rng.choice(len(CLUB_STATUS), size=n, p=club_p / club_p.sum())
    # fashion_news_frequency follows FN: Regularly with it, NONE (or empty) without
    r = rng.random(n)
    news = np.where(
        fn,
        np.select([r < 0.9965, r < 0.998, r < 0.999998], [1, 2, 0], 3),
        np.select([r < 0.9805, r < 0.982], [0, 1], 4),
    )
    # postal codes: one default held by many, the others shared by a few customers each
    pool = max(1, n // 4)
    _, postal_text = _hex_ids(rng, pool + 1)
    shared = (pool * rng.random(n) ** 2).astype(np.int64)  # some codes held by many
    postal = np.where(rng.random(n) < DEFAULT_POSTAL_SHARE, 0, 1 + shared)

    # habits
    rng = _rng(seed, "habits", n)
    activity = np.exp(rng.normal(0, m.activity_sd, size=n))
    activity[club == 1] *= 0.4  # PRE-CREATE
    activity[rng.random(n) < m.never_buy_share] = 0
    engage_q = rng.beta(m.engage_alpha, m.engage_beta, size=n)
    online = rng.random(n) < m.online_customers
    p_online = np.where(online, rng.beta(8, 1.2, size=n), rng.beta(1.2, 6, size=n))
    p_fav = rng.beta(m.fav_alpha, m.fav_beta, size=n)
    p_rep = rng.beta(m.rep_alpha, m.rep_beta, size=n)
    slots = rng.integers(2, m.wardrobe_slots + 1, size=n)
    # taste: a distribution over departments per age bucket; favourites drawn from it
    dept_w = np.array([d.weight for d in DEPARTMENTS]) * present
    index_of = np.array([INDEX_CODES.index(d.index_code) for d in DEPARTMENTS])
    jitter = np.exp(rng.normal(0, 0.35, size=(len(AGE_BUCKETS) + 1, len(DEPARTMENTS))))
    taste = dept_w * INDEX_AFFINITY[:, index_of] * jitter
    taste /= taste.sum(axis=1, keepdims=True)
    cum = np.cumsum(taste, axis=1)
    cum[:, -1] = 1.0
    bucket_cum = (cum + np.arange(len(cum))[:, None]).ravel()
    # favourites are concentrated: drawn from the bucket's taste sharpened (power 1.5)
    sharp = taste**1.5
    sharp_cum = np.cumsum(sharp / sharp.sum(axis=1, keepdims=True), axis=1)
    sharp_cum[:, -1] = 1.0
    fav = np.empty((n, 3), dtype=np.int64)
    for k in range(3):
        u = rng.random(n)
        for b in range(len(sharp_cum)):
            at = bucket == b
            fav[at, k] = np.searchsorted(sharp_cum[b], u[at], side="right")
    fav = np.minimum(fav, len(DEPARTMENTS) - 1)
    weights = activity * engage_q
    return {
        "customer_hex": _fixed_strings(text),
        "age": age,
        "age_null": age_null,
        "fn": fn,
        "active": active,
        "club": club,
        "news": news,
        "postal": postal,
        "postal_hex": _fixed_strings(postal_text),
        "bucket": bucket,
        "activity_cum": np.cumsum(activity),
        "engage_q": engage_q,
        "engage_mean": float(weights.sum() / max(activity.sum(), 1e-300)),
        "p_online": p_online,
        "p_fav": p_fav,
        "fav": fav,
        "p_rep": p_rep,
        "slots": slots,
        "bucket_cum": bucket_cum,
        "dept_fix": np.where(present, np.arange(len(present)), int(np.argmax(dept_w))),
    }


# --------------------------------------------------------------------------------------------
# Popularity and taste


def _popularity(universe: Universe, ordinal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cumulative popularity along by_dept, each department's start in it, its total) on a day."""
    cached = universe._popularity.pop(ordinal, None)
    if cached is not None:
        universe._popularity[ordinal] = cached  # most recently used last
        return cached
    m = MODEL
    age = (ordinal - EPOCH.toordinal() - universe.launch) % CYCLE_DAYS
    x = age / universe.peak
    life = np.where(universe.evergreen, m.evergreen_level, x * np.exp(1 - x)) + 1e-4
    doy = dt.date.fromordinal(ordinal).timetuple().tm_yday
    lift = [1.0] + [
        math.exp(m.season_amplitude * math.cos(2 * math.pi * (doy - SEASON_PEAK_DOY[s]) / 365.25))
        for s in SEASONS[1:]
    ]
    pop = universe.base * life * np.array(lift)[universe.season]
    cum = np.cumsum(pop[universe.by_dept])
    before = np.concatenate([[0.0], cum])
    start = before[universe.dept_lo]
    total = before[universe.dept_hi] - start
    if len(universe._popularity) >= 16:
        universe._popularity.pop(next(iter(universe._popularity)))
    universe._popularity[ordinal] = (cum, start, total)
    return cum, start, total


def _in_dept(universe: Universe, ordinal: int, dept: np.ndarray, u: np.ndarray) -> np.ndarray:
    """An article of each department in ``dept``, by the day's popularity, at uniforms ``u``."""
    cum, start, total = _popularity(universe, ordinal)
    pos = np.searchsorted(cum, start[dept] + u * total[dept], side="right")
    pos = np.clip(pos, universe.dept_lo[dept], universe.dept_hi[dept] - 1)
    return universe.by_dept[pos]


def _taste_dept(
    universe: Universe, ordinal: int, cust: np.ndarray, u_fav: np.ndarray, u_dept: np.ndarray
) -> np.ndarray:
    """A department per customer: the day's bestsellers' (a trend buy), a favourite, or one of
    the age bucket's taste."""
    trend = u_fav < MODEL.trend_p
    fav = (u_fav - MODEL.trend_p) / (1 - MODEL.trend_p) < universe.p_fav[cust]
    k = np.searchsorted(FAV_CUM, u_dept, side="right")
    bucket = universe.bucket[cust]
    n_dept = len(DEPARTMENTS)
    by_age = np.searchsorted(universe.bucket_cum, bucket + u_dept, side="right") - bucket * n_dept
    dept = np.where(fav, universe.fav[cust, k], np.clip(by_age, 0, n_dept - 1))
    _, _, total = _popularity(universe, ordinal)
    shares = np.cumsum(total)
    by_sales = np.searchsorted(shares, u_dept * shares[-1], side="right")
    dept = np.where(trend, np.minimum(by_sales, n_dept - 1), dept)
    return universe.dept_fix[dept]


def _wardrobe(universe: Universe, cust: np.ndarray, slot: np.ndarray, ordinal: int) -> np.ndarray:
    """The article in each customer's wardrobe slot on a day: drawn (by hash, not by the day's
    stream) from the taste and popularity of the week the slot was last renewed."""
    weeks = MODEL.wardrobe_weeks
    period = (_week(ordinal) + slot) // weeks
    anchor = period * weeks - slot  # the week the slot was renewed
    salt = universe.salts["wardrobe"]
    u_fav = _hash_uniform(salt, cust, slot, period, np.zeros_like(cust))
    u_dept = _hash_uniform(salt, cust, slot, period, np.ones_like(cust))
    u_art = _hash_uniform(salt, cust, slot, period, np.full_like(cust, 2))
    article = np.empty(cust.size, dtype=np.int64)
    for week in np.unique(anchor):
        at = anchor == week
        day = EPOCH.toordinal() + 7 * int(week) + 3  # the middle of the week of the renewal
        dept = _taste_dept(universe, day, cust[at], u_fav[at], u_dept[at])
        article[at] = _in_dept(universe, day, dept, u_art[at])
    return article


def _sibling(universe: Universe, article: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Another variant (colour) of each article's product; the article itself if it has none."""
    product = universe.product[article]
    n = universe.product_variants[product]
    other = (universe.variant[article] + 1 + (u * (n - 1)).astype(np.int64)) % n
    return universe.product_first[product] + other


# --------------------------------------------------------------------------------------------
# A day's transactions


WEEKDAY = np.array([0.94, 0.92, 0.95, 1.0, 1.1, 1.12, 0.97])  # Monday first


def _raw_day_factor(ordinal: int) -> float:
    """Sales of a day: the week, the year, the special days (not normalised)."""
    day = dt.date.fromordinal(ordinal)
    doy = day.timetuple().tm_yday
    year = 1 + 0.2 * math.cos(2 * math.pi * (doy - 176) / 365.25)
    year += 0.08 * math.cos(4 * math.pi * (doy - 330) / 365.25)
    special = 1.0
    nov1 = dt.date(day.year, 11, 1)
    black_friday = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 22)
    if day == black_friday:
        special = 2.4
    elif 0 < (day - black_friday).days <= 3:
        special = 1.4
    elif (day.month, day.day) in ((12, 24), (12, 25)):
        special = 0.35
    elif (day.month, day.day) in ((12, 26), (12, 27), (6, 26), (6, 27)):
        special = 1.6  # the winter and summer sales begin
    return float(WEEKDAY[day.weekday()] * year * special)


# The mean over four years, so that an average day makes ROWS_PER_CUSTOMER_DAY.
_FOUR_YEARS = range(dt.date(2019, 1, 1).toordinal(), dt.date(2023, 1, 1).toordinal())
_DAY_FACTOR_MEAN = float(np.mean([_raw_day_factor(o) for o in _FOUR_YEARS]))


@functools.lru_cache(maxsize=4096)
def _day_factor(ordinal: int) -> float:
    """Sales of a day relative to an average day."""
    return _raw_day_factor(ordinal) / _DAY_FACTOR_MEAN


# rows of a trip: the basket's articles times the copies bought of each
_COPIES = 1 + MODEL.duplicate_p * (
    (1 - MODEL.bulk_p) / (1 - MODEL.duplicate_more_p) + MODEL.bulk_p * 11.5
)
TRIPS_PER_CUSTOMER_DAY = ROWS_PER_CUSTOMER_DAY / ((1 + MODEL.basket_extra_mean) * _COPIES)


@dataclass
class DayRows:
    """One day's transactions (customer order, each trip's rows in order)."""

    customer: np.ndarray  # customer index
    article: np.ndarray  # article index
    cents: np.ndarray  # price, öre of SEK
    channel: np.ndarray  # 1 store, 2 online


def day_rows(universe: Universe, ordinal: int) -> DayRows:
    """The transactions of one calendar day: a function of the universe and the day only."""
    m = MODEL
    rng = _rng(universe.seed, "day", ordinal)
    # trips: customers drawn by activity, kept when engaged in the day's period
    lam = universe.customers * TRIPS_PER_CUSTOMER_DAY * _day_factor(ordinal)
    total = universe.activity_cum[-1]
    n_cand = int(rng.poisson(lam / max(universe.engage_mean, 1e-9))) if total > 0 else 0
    cand = np.searchsorted(universe.activity_cum, rng.random(n_cand) * total, side="right")
    cand = np.minimum(cand, universe.customers - 1)
    period = _week(ordinal) // m.engage_weeks
    engaged = _hash_uniform(universe.salts["engage"], cand, np.full_like(cand, period))
    trip_cust = np.sort(cand[engaged < universe.engage_q[cand]])
    n_trips = trip_cust.size
    online = rng.random(n_trips) < universe.p_online[trip_cust]
    p = m.basket_extra_shape / (m.basket_extra_shape + m.basket_extra_mean)
    size = np.minimum(
        1 + rng.negative_binomial(m.basket_extra_shape, p, size=n_trips), m.basket_max
    )
    trip = np.repeat(np.arange(n_trips), size)
    cust = trip_cust[trip]
    n = trip.size
    first = np.zeros(n, dtype=bool)
    first[np.cumsum(size) - size] = True  # each trip's first row

    # each trip's first article: from the wardrobe or the customer's taste
    u = rng.random((6, n))
    wardrobe = u[0] < universe.p_rep[cust]
    slot = (u[1] * universe.slots[cust]).astype(np.int64)
    article = np.empty(n, dtype=np.int64)
    dept_taste = _taste_dept(universe, ordinal, cust, u[2], u[3])
    taste_article = _in_dept(universe, ordinal, dept_taste, u[4])
    lead = first & ~wardrobe
    article[lead] = taste_article[lead]
    pick = first & wardrobe
    article[pick] = _wardrobe(universe, cust[pick], slot[pick], ordinal)
    # the others: relatives of the first, wardrobe, departments, taste
    anchor = article[first][trip]
    r = u[5]
    kind = np.select(
        [
            r < m.sibling_p,
            r < m.sibling_p + m.companion_p,
            r < m.sibling_p + m.companion_p + (1 - m.sibling_p - m.companion_p) * wardrobe,
        ],
        [0, 1, 2],
        3,
    )
    rest = ~first
    sib = rest & (kind == 0)
    v = rng.random((3, n))
    article[sib] = _sibling(universe, anchor[sib], v[0, sib])
    comp = rest & (kind == 1)
    article[comp] = universe.companion[anchor[comp]]
    ward = rest & (kind == 2)
    article[ward] = _wardrobe(universe, cust[ward], slot[ward], ordinal)
    other = rest & (kind == 3)
    dept = np.select(
        [v[1] < m.same_dept_p, v[1] < m.same_dept_p + m.partner_dept_p],
        [universe.dept[anchor], universe.partner[universe.dept[anchor]]],
        dept_taste,
    )
    article[other] = _in_dept(universe, ordinal, dept[other], v[2, other])
    # a wardrobe purchase is sometimes another colour of its product
    recolour = wardrobe & (v[0] < m.wardrobe_sibling) & (first | ward)
    article[recolour] = _sibling(universe, article[recolour], rng.random(int(recolour.sum())))
    # an article drawn twice for one trip is drawn again from the taste (then bought once)
    again = ~_first_occurrences(trip * universe.articles + article)
    dept = _taste_dept(universe, ordinal, cust[again], rng.random(int(again.sum())), v[1, again])
    article[again] = _in_dept(universe, ordinal, dept, rng.random(dept.size))

    # prices: on sale past the peak in the sales; member prices on some trips
    cents = universe.price[article]
    if _in_sales(ordinal):
        age = (ordinal - EPOCH.toordinal() - universe.launch[article]) % CYCLE_DAYS
        late = (age > 2.5 * universe.peak[article]) & ~universe.evergreen[article]
        cents = np.where(late, universe.sale_price[article], cents)
    member = (rng.random(n_trips) < m.member_discount_p)[trip]
    cents = np.where(member, cents * 9 // 10, cents)
    channel = np.where(online[trip] | universe.online_only[article], 2, 1)
    once = _first_occurrences(trip * universe.articles + article)
    cust, article, cents, channel = cust[once], article[once], cents[once], channel[once]
    n = cust.size
    # copies: two or more of an article in a trip write identical rows
    copies = np.ones(n, dtype=np.int64)
    dup = rng.random(n) < m.duplicate_p
    more = rng.geometric(1 - m.duplicate_more_p, size=n)
    bulk = rng.random(n) < m.bulk_p
    copies[dup] = np.where(bulk, rng.integers(5, 21, size=n), 1 + more)[dup]
    keep = np.repeat(np.arange(n), copies)
    return DayRows(cust[keep], article[keep], cents[keep], channel[keep])


def _first_occurrences(key: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value of ``key``."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    first = np.ones(key.size, dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    keep = np.zeros(key.size, dtype=bool)
    keep[order[first]] = True
    return keep


def _in_sales(ordinal: int) -> bool:
    day = dt.date.fromordinal(ordinal)
    summer = (6, 26) <= (day.month, day.day) <= (7, 31)
    return summer or (day.month, day.day) >= (12, 26) or day.month == 1


# --------------------------------------------------------------------------------------------
# Writing


def _write_articles(path: Path, universe: Universe, pandas: bool) -> int:
    """articles.csv: quoted only where needed, ``\\n`` line ends, in article_id order."""
    u = universe
    header = [
        "article_id", "product_code", "prod_name", "product_type_no", "product_type_name",
        "product_group_name", "graphical_appearance_no", "graphical_appearance_name",
        "colour_group_code", "colour_group_name", "perceived_colour_value_id",
        "perceived_colour_value_name", "perceived_colour_master_id",
        "perceived_colour_master_name", "department_no", "department_name", "index_code",
        "index_name", "index_group_no", "index_group_name", "section_no", "section_name",
        "garment_group_no", "garment_group_name", "detail_desc",
    ]  # fmt: skip
    dept_cols = []
    for d in DEPARTMENTS:
        index_name, group_no, group_name = INDEXES[d.index_code]
        dept_cols.append(
            [str(d.no), d.name, d.index_code, index_name, str(group_no), group_name]
            + [str(d.section_no), SECTIONS[d.section_no]]
            + [str(d.garment_group_no), GARMENT_GROUPS[d.garment_group_no]]
        )
    type_cols = [[str(t[0]), t[1], t[2]] for t in PRODUCT_TYPES]
    look_cols = [[str(a[0]), a[1]] for a in APPEARANCES]
    colour_cols = []
    for code, name, value, master, _ in COLOURS:
        text = str(code) if pandas or code < 0 else f"{code:02d}"
        colour_cols.append(
            [text, name, str(value), COLOUR_VALUES[value], str(master), COLOUR_MASTERS[master]]
        )
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(([""] if pandas else []) + header)
    article_fmt, code_fmt = ("{:d}", "{:d}") if pandas else ("{:010d}", "{:07d}")
    for i in range(u.articles):
        p = int(u.product[i])
        name = u.product_name[p] + (" (1)" if u.name_suffix[i] else "")
        row = [article_fmt.format(u.article_id[i]), code_fmt.format(u.product_code[p]), name]
        row += type_cols[u.ptype[i]] + look_cols[u.appearance[i]] + colour_cols[u.colour[i]]
        row += dept_cols[u.dept[i]] + [u.product_desc[p] or ""]
        writer.writerow(([str(i)] if pandas else []) + row)
    with replacing(path) as tmp:
        tmp.write_bytes(buf.getvalue().encode("utf-8"))
    return u.articles


CUSTOMERS_HEADER = (
    b"customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code\n"
)


def _write_customers(path: Path, universe: Universe, pandas: bool) -> int:
    """customers.csv in customer_id order, built by Arrow string kernels a chunk at a time."""
    u = universe
    n = u.customers
    age_text = pa.array(
        [""] + [f"{a}.0" if pandas else str(a) for a in range(0, 130)], type=pa.string()
    )
    flag = pa.array(["", "1.0"])
    club = pa.array([s for s, _ in CLUB_STATUS])
    news = pa.array(list(NEWS))
    chunk = 250_000
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(CUSTOMERS_HEADER)
        for lo in range(0, n, chunk):
            hi = min(n, lo + chunk)
            age = np.where(u.age_null[lo:hi], 0, u.age[lo:hi] + 1)
            lines = pc.binary_join_element_wise(
                u.customer_hex[lo:hi],
                flag.take(pa.array(u.fn[lo:hi].astype(np.int8))),
                flag.take(pa.array(u.active[lo:hi].astype(np.int8))),
                club.take(pa.array(u.club[lo:hi])),
                news.take(pa.array(u.news[lo:hi])),
                age_text.take(pa.array(age)),
                u.postal_hex.take(pa.array(u.postal[lo:hi])),
                ",",
            )
            f.write(_text(pc.binary_join_element_wise(lines, "", "\n")))
    return n


def _text(lines: pa.Array) -> memoryview:
    """The strings of ``lines`` back to back, as they lie in the string array's data buffer."""
    if not len(lines):
        return memoryview(b"")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[len(lines)]]


def _price_texts(cents: np.ndarray, pandas: bool) -> list[str]:
    """SEK/590 with up to 16 decimals, truncated (Kaggle's ``0.0508305084745762``); pandas
    writes the float that text parses to."""
    out = []
    for c in cents.tolist():
        q = abs(c) * 10**16 // 59_000
        digits = f"{q:017d}"
        frac = digits[-16:].rstrip("0") or "0"
        text = ("-" if c < 0 else "") + digits[:-16] + "." + frac
        out.append(repr(float(text)) if pandas else text)
    return out


def _write_transactions(
    path: Path, universe: Universe, days: list[dt.date], pandas: bool, defects: bool
) -> int:
    """transactions_train.csv, a chunk of days at a time: drawn here, formatted and written on a
    second thread (Arrow's kernels release the GIL); returns its lines (without the header)."""
    u = universe
    article_fmt = "{:d}" if pandas else "{:010d}"
    ids = [article_fmt.format(a) for a in u.article_id.tolist()]
    unknown_articles, unknown_customers = _unknown_ids(u, article_fmt)
    article_text = pa.array(ids + unknown_articles)
    customer_text = pa.concat_arrays([u.customer_hex, unknown_customers])
    channel_text = pa.array(["0\n", "1\n", "2\n", "3\n"])
    per_chunk = 7 * WEEKS_PER_CHUNK
    chunks = [days[i : i + per_chunk] for i in range(0, len(days), per_chunk)]
    last = days[-1]
    lines = 0
    next_log = LOG_EVERY
    with (
        replacing(path) as tmp,
        open(tmp, "wb") as f,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        f.write(b"t_dat,customer_id,article_id,price,sales_channel_id\n")
        pending: deque[Future[int]] = deque()
        for number, chunk in enumerate(chunks):
            parts = [day_rows(u, day.toordinal()) for day in chunk]
            if defects:
                parts = [
                    _with_defects(u, day, rows, last)
                    for day, rows in zip(chunk, parts, strict=True)
                ]
            texts = (article_text, customer_text, channel_text)
            pending.append(writer.submit(_write_chunk, f, chunk, parts, texts, pandas))
            while len(pending) > 1:
                lines += pending.popleft().result()
            done = (number + 1) / len(chunks)
            if done >= next_log or number + 1 == len(chunks):
                log.info(
                    "hm: transactions %d/%d days drawn (up to %s)",
                    sum(map(len, chunks[: number + 1])), len(days), chunk[-1].isoformat(),
                )  # fmt: skip
                next_log = (math.floor(done / LOG_EVERY) + 1) * LOG_EVERY
        while pending:
            lines += pending.popleft().result()
    return lines


def _unknown_ids(universe: Universe, article_fmt: str) -> tuple[list[str], pa.Array]:
    """Article ids absent from articles.csv and customer ids absent from customers.csv."""
    rng = _rng(universe.seed, "unknown-ids", universe.customers, universe.articles)
    start = int(universe.product_code.max()) + 1  # codes beyond the catalogue's
    articles = [article_fmt.format((start + k) * 1000 + 1) for k in range(N_UNKNOWN)]
    _, text = _hex_ids(rng, N_UNKNOWN)
    return articles, _fixed_strings(text)


@dataclass
class Dirty:
    """A day's rows with defects: the indices point past the real ids for unknown ones."""

    rows: DayRows
    day_index: np.ndarray  # 0 the day, 1.. a future day
    future: list[dt.date]
    malformed: list[int]  # rows before which a malformed line is written


def _with_defects(universe: Universe, day: dt.date, rows: DayRows, last: dt.date) -> Dirty:
    """The day's rows with the real deliveries' quirks, from the day's own stream (and at least
    one of each kind on the delivery's last day)."""
    n = rows.customer.size
    rng = _rng(universe.seed, "defects", day.toordinal())
    counts = {k: int(rng.binomial(n, rate)) if n else 0 for k, rate in DEFECT_RATES.items()}
    if day == last:
        counts = {k: max(c, 1) for k, c in counts.items()}
    customer, article = rows.customer.copy(), rows.article.copy()
    cents, channel = rows.cents.copy(), rows.channel.copy()
    day_index = np.zeros(n, dtype=np.int64)
    if n == 0:  # a day without sales: the defects make rows of their own
        size = sum(counts.values())
        customer = rng.integers(universe.customers, size=size)
        article = rng.integers(universe.articles, size=size)
        cents, channel = universe.price[article], np.full(size, 2)
        day_index = np.zeros(size, dtype=np.int64)
        n = size

    def rows_of(kind: str) -> np.ndarray:
        return rng.choice(n, size=min(n, counts[kind]), replace=False)

    at = rows_of("unknown_article")
    article[at] = universe.articles + rng.integers(N_UNKNOWN, size=at.size)
    at = rows_of("unknown_customer")
    customer[at] = universe.customers + rng.integers(N_UNKNOWN, size=at.size)
    at = rows_of("bad_price")
    cents[at] = np.where(rng.random(at.size) < 0.5, 0, -cents[at])
    channel[rows_of("channel_3")] = 3
    at = rows_of("future_t_dat")
    future = [last + dt.timedelta(days=int(k)) for k in rng.integers(1, 60, size=at.size)]
    day_index[at] = 1 + np.arange(at.size)
    malformed = sorted(rng.integers(0, n + 1, size=counts["malformed_line"]).tolist())
    return Dirty(DayRows(customer, article, cents, channel), day_index, future, malformed)


def _write_chunk(f, days, parts, texts, pandas: bool) -> int:
    """Format a chunk of days and append it to the open file ``f``; return its lines."""
    article_text, customer_text, channel_text = texts
    day_texts, day_index, pieces, malformed = [], [], [], []
    offset = 0
    for day, part in zip(days, parts, strict=True):
        if isinstance(part, Dirty):
            rows, base = part.rows, len(day_texts)
            day_texts += [day.isoformat()] + [d.isoformat() for d in part.future]
            day_index.append(base + part.day_index)
            malformed += [offset + r for r in part.malformed]
        else:
            rows = part
            day_index.append(np.full(rows.customer.size, len(day_texts)))
            day_texts.append(day.isoformat())
        pieces.append(rows)
        offset += rows.customer.size
    customer = np.concatenate([p.customer for p in pieces])
    article = np.concatenate([p.article for p in pieces])
    cents = np.concatenate([p.cents for p in pieces])
    channel = np.concatenate([p.channel for p in pieces])
    n = customer.size
    if not n:
        return 0
    values, inverse = np.unique(cents, return_inverse=True)
    lines = pc.binary_join_element_wise(
        pa.array(day_texts).take(pa.array(np.concatenate(day_index))),
        customer_text.take(pa.array(customer)),
        article_text.take(pa.array(article)),
        pa.array(_price_texts(values, pandas)).take(pa.array(inverse.ravel())),
        channel_text.take(pa.array(channel)),
        ",",
    )
    # The lines lie back to back in the string array's data buffer: write it as it is, but for
    # the malformed lines, each a copy of the row after it cut short (no sales_channel_id).
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset :]
    data = memoryview(lines.buffers()[2])
    at = 0
    for row in malformed:
        row = min(row, n - 1)
        f.write(data[offsets[at] : offsets[row]])
        f.write(bytes(data[offsets[row] : offsets[row + 1]]).rsplit(b",", 1)[0] + b"\n")
        at = row
    f.write(data[offsets[at] : offsets[n]])
    return n + len(malformed)
