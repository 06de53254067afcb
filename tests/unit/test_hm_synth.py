"""The synthetic H&M generator: Kaggle's files and formats (and the pandas round trip's), one
universe whose days continue from one delivery to the next, the structure a recommender needs
(repurchase, age, popularity that is neither trivial nor random) and the real quirks on request."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data

from mlcore.synth.hm import DEFECT_RATES, FILES, FULL, SOURCE, shape_for, write_delivery

DS = dt.date(2020, 9, 22)
CLEAN = {"seed": 3, "customers": 6_000, "articles": 3_000, "weeks": 12}
TRANSACTIONS_HEADER = "t_dat,customer_id,article_id,price,sales_channel_id"
CUSTOMERS_HEADER = "customer_id,FN,Active,club_member_status,fashion_news_frequency,age,postal_code"
ARTICLES_HEADER = (
    "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
    "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
    "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,"
    "perceived_colour_master_name,department_no,department_name,index_code,index_name,"
    "index_group_no,index_group_name,section_no,section_name,garment_group_no,"
    "garment_group_name,detail_desc"
)
HEX64 = re.compile(r"[0-9a-f]{64}")
PRICE = re.compile(r"0\.\d{1,16}")


def _folder(root, ds: dt.date = DS):
    return root / "raw" / SOURCE / f"ds={ds.isoformat()}"


def _read(root, ds: dt.date = DS) -> dict[str, pd.DataFrame]:
    """Each file as text columns, empty fields kept as ""."""
    return {
        name: pd.read_csv(_folder(root, ds) / name, dtype=str, keep_default_na=False)
        for name in FILES
    }


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Twelve weeks of a small universe, as Kaggle writes it and after a pandas round trip."""
    root = tmp_path_factory.mktemp("hm-clean")
    counts = write_delivery(root / "kaggle", DS, **CLEAN)
    pandas_counts = write_delivery(root / "pandas", DS, **CLEAN, pandas=True)
    return root, counts, pandas_counts, _read(root / "kaggle"), _read(root / "pandas")


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    root = tmp_path_factory.mktemp("hm-dirty")
    options = {"seed": 5, "customers": 3_000, "articles": 500, "weeks": 4}
    counts = write_delivery(root, DS, **options, defects=True)
    return root, counts, options


def test_layout_counts_and_headers(clean):
    root, counts, pandas_counts, frames, _ = clean
    assert set(counts) == set(FILES) and pandas_counts == counts
    assert counts["customers.csv"] == CLEAN["customers"]
    assert counts["articles.csv"] == CLEAN["articles"]
    headers = {
        "transactions_train.csv": TRANSACTIONS_HEADER,
        "customers.csv": CUSTOMERS_HEADER,
        "articles.csv": ARTICLES_HEADER,
    }
    for name, header in headers.items():
        raw = (_folder(root / "kaggle") / name).read_bytes()
        assert raw.decode("utf-8").split("\n", 1)[0] == header
        assert b"\r" not in raw and raw.endswith(b"\n")
        assert len(frames[name]) == counts[name]
        pandas_raw = (_folder(root / "pandas") / name).read_text(encoding="utf-8")
        expected = "," + header if name == "articles.csv" else header
        assert pandas_raw.split("\n", 1)[0] == expected


def test_headers_are_the_real_ones():
    for name in FILES:
        with open(shared_data("hm", "head_sample", name), encoding="utf-8") as f:
            real = f.readline().rstrip("\r\n")
        ours = {
            "transactions_train.csv": TRANSACTIONS_HEADER,
            "customers.csv": CUSTOMERS_HEADER,
            "articles.csv": "," + ARTICLES_HEADER,  # the sample went through pandas
        }[name]
        assert real == ours


def test_kaggle_formats(clean):
    _, _, _, frames, _ = clean
    t, c, a = (frames[n] for n in ("transactions_train.csv", "customers.csv", "articles.csv"))
    assert a.article_id.str.fullmatch(r"0\d{9}").all() and a.article_id.is_unique
    assert a.article_id.is_monotonic_increasing
    assert a.product_code.str.fullmatch(r"0\d{6}").all()
    assert (a.article_id.str[:7] == a.product_code).all()
    assert a.colour_group_code.str.fullmatch(r"\d{2}|-1").all()
    assert set(a.index_code) <= set("ABCDFGHIJS")
    assert a.detail_desc.str.contains(",").mean() > 0.3  # quoted where they hold a comma
    assert c.customer_id.str.fullmatch(HEX64).all() and c.customer_id.is_monotonic_increasing
    assert c.customer_id.is_unique and c.postal_code.str.fullmatch(HEX64).all()
    assert set(c.FN) == {"", "1.0"} and set(c.Active) == {"", "1.0"}
    assert set(c.club_member_status) <= {"ACTIVE", "PRE-CREATE", "LEFT CLUB", ""}
    assert set(c.fashion_news_frequency) <= {"NONE", "Regularly", "Monthly", "None", ""}
    ages = c.age[c.age != ""]
    assert ages.str.fullmatch(r"\d{2}").all() and ages.astype(int).between(16, 99).all()
    assert t.customer_id.str.fullmatch(HEX64).all()
    assert t.article_id.str.fullmatch(r"0\d{9}").all()
    assert set(t.sales_channel_id) == {"1", "2"}
    assert t.price.str.fullmatch(PRICE).all()
    # prices are SEK amounts (whole öre) over 590, cut after 16 decimals
    ore = t.price.astype(float) * 59_000
    assert np.abs(ore - np.round(ore)).max() < 1e-6
    assert (np.round(ore) % 100 == 99).mean() > 0.6  # price points: 9.99, 19.99, ...
    days = pd.to_datetime(t.t_dat)
    assert days.is_monotonic_increasing
    assert days.min() >= pd.Timestamp(DS - dt.timedelta(days=7 * CLEAN["weeks"] - 1))
    assert days.max() == pd.Timestamp(DS)
    # within a day, grouped by customer in customer_id order
    for _, day in t.groupby("t_dat"):
        assert day.customer_id.is_monotonic_increasing


def test_product_variants_share_the_product_and_differ_in_colour(clean):
    _, _, _, frames, _ = clean
    a = frames["articles.csv"]
    product = ["product_type_no", "department_no", "section_no", "garment_group_no"]
    assert (a.groupby("product_code")[product + ["detail_desc"]].nunique() == 1).all().all()
    variants = a.groupby("product_code").size()
    assert 1.8 < variants.mean() < 2.8 and variants.max() >= 5
    multi = a[a.product_code.isin(variants[variants > 1].index)]
    assert (multi.groupby("product_code").colour_group_code.nunique() > 1).mean() > 0.6


def test_categories_are_real(clean):
    """Every department's codes and names, product type and colour as in the real catalogue."""
    _, _, _, frames, _ = clean
    ours = frames["articles.csv"]
    head = pd.read_csv(shared_data("hm", "head_sample", "articles.csv"), dtype=str)
    head = head.iloc[:, 1:].fillna("")
    joined = pd.read_parquet(shared_data("hm", "joined_sample", "articles_sample.parquet"))
    real = pd.concat([head, joined.astype(str)])
    for columns in (
        ["department_no", "department_name", "index_code", "index_name", "index_group_name"],
        ["department_no", "section_no", "section_name", "garment_group_name"],
        ["product_type_no", "product_type_name", "product_group_name"],
        ["colour_group_name", "perceived_colour_master_name"],
        ["graphical_appearance_no", "graphical_appearance_name"],
    ):
        known = set(map(tuple, real[columns].to_numpy().tolist()))
        assert set(map(tuple, ours[columns].to_numpy().tolist())) <= known, columns


def test_pandas_round_trip_variant(clean):
    _, _, _, kaggle, frames = clean
    a, a0 = frames["articles.csv"], kaggle["articles.csv"]
    assert a.columns[0] == "Unnamed: 0"  # pandas' name for the unnamed index column
    assert a.iloc[:, 0].tolist() == [str(i) for i in range(len(a))]
    assert (a.article_id == a0.article_id.str.lstrip("0")).all()
    assert (a.product_code == a0.product_code.str.lstrip("0")).all()
    assert a.colour_group_code.astype(int).tolist() == a0.colour_group_code.astype(int).tolist()
    assert not a.colour_group_code.str.fullmatch(r"0\d").any()
    c, c0 = frames["customers.csv"], kaggle["customers.csv"]
    ages = c.age[c.age != ""]
    assert ages.str.fullmatch(r"\d{2}\.0").all()
    assert (c.age.str.removesuffix(".0") == c0.age).all()
    t, t0 = frames["transactions_train.csv"], kaggle["transactions_train.csv"]
    assert (t.article_id == t0.article_id.str.lstrip("0")).all()
    assert (t.price == t0.price.map(lambda p: repr(float(p)))).all()
    assert (
        (t.drop(columns=["article_id", "price"]) == t0.drop(columns=["article_id", "price"]))
        .all()
        .all()
    )


def test_same_arguments_same_bytes(tmp_path):
    options = {"customers": 800, "articles": 300, "weeks": 2, "defects": True}
    a = write_delivery(tmp_path / "a", DS, seed=7, **options)
    b = write_delivery(tmp_path / "b", DS, seed=7, **options)
    c = write_delivery(tmp_path / "c", DS, seed=8, **options)
    assert a == b
    for name in FILES:
        first = (_folder(tmp_path / "a") / name).read_bytes()
        assert first == (_folder(tmp_path / "b") / name).read_bytes()
        assert first != (_folder(tmp_path / "c") / name).read_bytes()
    assert c["customers.csv"] == a["customers.csv"]


def _lines_by_day(path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        out.setdefault(line[:10], []).append(line)
    return out


def test_history_and_increment_continue_each_other(tmp_path):
    universe = {"seed": 11, "customers": 1_500, "articles": 400}
    d2 = DS + dt.timedelta(days=1)
    write_delivery(tmp_path / "history", DS, **universe, weeks=2)
    write_delivery(tmp_path / "next", d2, **universe, weeks=2, days_only=1)
    write_delivery(tmp_path / "longer", d2, **universe, weeks=3)
    history = _lines_by_day(_folder(tmp_path / "history") / "transactions_train.csv")
    increment = _lines_by_day(_folder(tmp_path / "next", d2) / "transactions_train.csv")
    longer = _lines_by_day(_folder(tmp_path / "longer", d2) / "transactions_train.csv")
    assert len(history) == 14 and list(increment) == [d2.isoformat()]
    assert set(history) | set(increment) <= set(longer) and len(longer) == 21
    for day, lines in [*history.items(), *increment.items()]:
        assert longer[day] == lines, day  # overlapping deliveries agree day by day
    for name in ("articles.csv", "customers.csv"):  # the same universe every night
        text = (_folder(tmp_path / "history") / name).read_bytes()
        assert text == (_folder(tmp_path / "next", d2) / name).read_bytes()


def test_null_rates_as_kaggle(clean):
    _, _, _, frames, _ = clean
    c, a = frames["customers.csv"], frames["articles.csv"]
    null = (c == "").mean()
    assert abs(null.FN - 0.652) < 0.03 and abs(null.Active - 0.662) < 0.03
    assert 0.001 < null.club_member_status < 0.01
    assert 0.005 < null.fashion_news_frequency < 0.02
    assert 0.005 < null.age < 0.02
    assert null.customer_id == 0 and null.postal_code == 0
    assert ((c.FN == "") <= (c.Active == "")).all()  # Active only with FN
    assert 0 < (a.detail_desc == "").mean() < 0.02
    assert (c.club_member_status == "PRE-CREATE").mean() > 0.04


def test_duplicate_rows_channels_and_volume_as_kaggle(clean):
    _, _, _, frames, _ = clean
    t = frames["transactions_train.csv"]
    assert 0.06 < t.duplicated().mean() < 0.12  # the real head sample: 910 of 10,000
    assert 0.62 < (t.sales_channel_id == "2").mean() < 0.78  # Kaggle: 70% online
    per_day = len(t) / (CLEAN["customers"] * 7 * CLEAN["weeks"])
    assert 0.02 < per_day < 0.045  # Kaggle: 0.032 rows per customer and day
    trips = t.groupby(["t_dat", "customer_id"]).size()
    assert 2.6 < trips.mean() < 4.2 and trips.median() <= 3  # Kaggle's first day: 3.4, 2
    assert (t.groupby(["t_dat", "customer_id"]).sales_channel_id.nunique() == 1).mean() > 0.9


def test_clean_transactions_reference_known_rows(clean):
    root, _, _, frames, _ = clean
    t = frames["transactions_train.csv"]
    assert t.article_id.isin(frames["articles.csv"].article_id).all()
    assert t.customer_id.isin(frames["customers.csv"].customer_id).all()
    assert (t.price.astype(float) > 0).all()
    text = (_folder(root / "kaggle") / "transactions_train.csv").read_text(encoding="utf-8")
    assert {line.count(",") for line in text.splitlines()} == {4}


def test_each_defect_kind_appears(dirty):
    root, counts, options = dirty
    lines = (_folder(root) / "transactions_train.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == counts["transactions_train.csv"] + 1
    rows = [line.split(",") for line in lines[1:]]
    malformed = [r for r in rows if len(r) != 5]
    good = pd.DataFrame([r for r in rows if len(r) == 5], columns=TRANSACTIONS_HEADER.split(","))
    frames = _read(root)
    found = {
        "malformed_line": len(malformed),
        "unknown_article": (~good.article_id.isin(frames["articles.csv"].article_id)).sum(),
        "unknown_customer": (~good.customer_id.isin(frames["customers.csv"].customer_id)).sum(),
        "bad_price": (good.price.astype(float) <= 0).sum(),
        "channel_3": (good.sales_channel_id == "3").sum(),
        "future_t_dat": (good.t_dat > DS.isoformat()).sum(),
    }
    assert set(found) == set(DEFECT_RATES)
    for kind, n in found.items():
        assert 1 <= n <= 30, (kind, n)
    assert len(good) > 0.99 * len(rows)


def _map12(t: pd.DataFrame, last: dt.date, top: list[str] | None = None) -> float:
    """MAP@12 (Kaggle's metric) on the week ending ``last`` of the same 12 articles for every
    customer: by default "last week's global top 12", the week before."""
    test_from = (last - dt.timedelta(days=6)).isoformat()
    prev_from = (last - dt.timedelta(days=13)).isoformat()
    test = t[t.t_dat >= test_from]
    if top is None:
        prev = t[(t.t_dat >= prev_from) & (t.t_dat < test_from)]
        top = prev.article_id.value_counts().index[:12].tolist()
    scores = []
    for bought in test.groupby("customer_id").article_id.agg(set):
        hits, score = 0, 0.0
        for rank, article in enumerate(top, start=1):
            if article in bought:
                hits += 1
                score += hits / rank
        scores.append(score / min(len(bought), 12))
    return float(np.mean(scores))


def test_popularity_is_neither_trivial_nor_random(clean):
    _, _, _, frames, _ = clean
    t = frames["transactions_train.csv"]
    score = _map12(t, DS)
    assert 0.003 < score < 0.08, score  # Kaggle's last week: 0.021
    # a random dozen of the catalogue scores far less
    rng = np.random.default_rng(0)
    dozen = rng.choice(frames["articles.csv"].article_id.to_numpy(), size=12, replace=False)
    assert _map12(t, DS, dozen.tolist()) < score / 3


def test_customers_buy_again(clean):
    """The share of purchases of an article (or product) the customer bought on an earlier day,
    against the same purchases with articles shuffled within each day (independent draws with
    the same popularity)."""
    _, _, _, frames, _ = clean
    t = frames["transactions_train.csv"].drop_duplicates(["t_dat", "customer_id", "article_id"])

    def again(df: pd.DataFrame) -> tuple[float, float]:
        df = df.assign(product=df.article_id.str[:7])
        first = df.groupby(["customer_id", "article_id"]).t_dat.transform("min")
        first_product = df.groupby(["customer_id", "product"]).t_dat.transform("min")
        return (df.t_dat > first).mean(), (df.t_dat > first_product).mean()

    rng = np.random.default_rng(1)
    shuffled = t.assign(
        article_id=t.groupby("t_dat").article_id.transform(lambda s: rng.permutation(s.to_numpy()))
    )
    article, product = again(t)
    article_by_chance, product_by_chance = again(shuffled)
    assert article > 2 * article_by_chance and article > 0.04
    assert product > 1.5 * product_by_chance and product > article


def test_taste_depends_on_age(clean):
    _, _, _, frames, _ = clean
    t, c, a = (frames[n] for n in ("transactions_train.csv", "customers.csv", "articles.csv"))
    age = c.set_index("customer_id").age.replace("", np.nan).astype(float)
    group = a.set_index("article_id").index_group_name
    rows = pd.DataFrame({"age": t.customer_id.map(age), "group": t.article_id.map(group)})
    young = rows[rows.age < 25].group.value_counts(normalize=True)
    old = rows[rows.age >= 50].group.value_counts(normalize=True)
    distance = 0.5 * young.sub(old, fill_value=0).abs().sum()
    assert distance > 0.15, distance
    assert young.get("Divided", 0) > 1.5 * old.get("Divided", 0)


def test_shape_for_scales_customers_and_articles():
    assert shape_for(1.0) == {k: FULL[k] for k in ("customers", "articles", "weeks")}
    assert shape_for(0.1) == {"customers": 137_198, "articles": 10_554, "weeks": 104}
    assert shape_for(0.0001)["articles"] == 200 and shape_for(0.0001)["weeks"] == 104
    with pytest.raises(ValueError):
        shape_for(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"customers": 0},
        {"articles": 11},
        {"weeks": 0},
        {"seed": -1},
        {"days_only": -1},
        {"weeks": 1, "days_only": 8},
    ],
)
def test_bad_arguments_are_refused(tmp_path, bad):
    options = {"customers": 10, "articles": 20, "weeks": 1, **bad}
    with pytest.raises(ValueError):
        write_delivery(tmp_path, DS, **options)
    assert not (tmp_path / "raw").exists()


def test_articles_csv_parses_with_the_csv_module(clean):
    root, counts, *_ = clean
    text = (_folder(root / "kaggle") / "articles.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert {len(r) for r in rows} == {25} and len(rows) == counts["articles.csv"] + 1
    assert '"' in text  # descriptions with commas are quoted
