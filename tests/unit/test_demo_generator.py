"""The demo data generator: determinism, contract layouts and every realism feature it promises.

Expected values come from the brief and contract.md §1 (layouts, aliases, contact normalisation),
not from the generator's output. The realism checks run once at the default size (2,000
customers, where the brief says every feature must be present); determinism and --force run at
300 customers.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow.parquet as pq
import pytest

from crm.demo import generate
from crm.demo.__main__ import main
from crm.demo.shape import DemoShape

AS_OF = date(2025, 6, 30)
END_OF_AS_OF = "2025-06-30 23:59:59"
SEED = 42
SMALL = 300
DEFAULT_SIZE = 2000
# contract.md §1 "Default Chinese aliases" for the customer columns.
CHINESE_ALIASES = {
    "客户编号": "customer_id",
    "客户ID": "customer_id",
    "客户名称": "name",
    "客户类型": "customer_type",
    "行业": "industry",
    "区域": "region",
    "地区": "region",
    "省份": "province",
    "城市": "city",
    "邮箱": "email",
    "手机": "phone",
    "电话": "phone",
    "负责人": "owner_rep_id",
    "来源": "source_channel",
    "创建时间": "created_at",
}
CUSTOMER_COLUMNS = {
    "customer_id", "name", "customer_type", "industry", "region", "province", "city",
    "employees", "email", "phone", "owner_rep_id", "source_channel", "is_key_account",
    "created_at",
}  # fmt: skip
CHANNELS = {"phone", "email", "visit", "meeting", "wechat", "chat", "ticket", "survey"}
STATUSES = {"completed", "cancelled", "refunded", "pending"}
TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _run(root: Path, customers: int = SMALL, seed: int = SEED, **kwargs) -> dict[str, int]:
    return generate(
        customers=customers,
        seed=seed,
        as_of=AS_OF,
        landing_dir=root / "landing",
        db_url=f"sqlite:///{root / 'source' / 'shop.db'}",
        **kwargs,
    )


def _read_csv(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    return pd.read_csv(path, encoding=encoding, dtype=str, keep_default_na=False)


def _query(root: Path, sql: str) -> pd.DataFrame:
    with sqlite3.connect(root / "source" / "shop.db") as con:
        return pd.read_sql_query(sql, con)


class DemoData:
    """The default-size data set, loaded once, with the GBK headers mapped to English."""

    def __init__(self, root: Path, counts: dict[str, int]) -> None:
        self.root = root
        self.counts = counts
        landing = root / "landing"
        self.english = _read_csv(landing / "customers" / "crm_export_2024.csv", "utf-8-sig")
        self.chinese = _read_csv(landing / "customers" / "客户导出_销售部.csv", "gbk")
        self.customers = pd.concat(
            [self.english, self.chinese.rename(columns=CHINESE_ALIASES)], ignore_index=True
        )
        self.reps = _read_csv(landing / "sales_reps" / "sales_reps.csv")
        files = sorted((landing / "interactions").glob("interactions_*.csv"))
        self.interaction_files = files
        self.interactions = pd.concat([_read_csv(f) for f in files], ignore_index=True)
        self.orders = _query(root, "select * from orders")
        self.payments = _query(root, "select * from payments")
        self.orders["day"] = pd.to_datetime(self.orders["ordered_at"]).dt.normalize()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoData:
    root = tmp_path_factory.mktemp("demo")
    counts = _run(root, customers=DEFAULT_SIZE)
    return DemoData(root, counts)


def _digest_tree(root: Path) -> dict[str, str]:
    """sha256 of every landing file and of the database rows (not the file: page layout)."""
    digests = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "landing").rglob("*"))
        if p.is_file()
    }
    for table, key in (("orders", "order_id"), ("payments", "payment_id")):
        rows = _query(root, f"select * from {table} order by {key}")
        digests[f"db:{table}"] = hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()
    return digests


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_and_as_of_give_byte_identical_outputs(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _run(first) == _run(second)
    _run(other, seed=SEED + 1)
    assert _digest_tree(first) == _digest_tree(second)
    assert _digest_tree(first) != _digest_tree(other)


def test_returned_counts_are_the_rows_written(demo: DemoData) -> None:
    assert demo.counts == {
        "customers": len(demo.customers),
        "sales_reps": len(demo.reps),
        "orders": len(demo.orders),
        "payments": len(demo.payments),
        "interactions": len(demo.interactions),
    }
    assert demo.counts["customers"] == DEFAULT_SIZE


def test_volumes_per_customer_are_about_10_orders_8_payments_30_interactions(
    demo: DemoData,
) -> None:
    # Brief: ~10 orders, ~8 payments, ~30 interactions per customer on average.
    assert 8 <= demo.counts["orders"] / DEFAULT_SIZE <= 12
    assert 6 <= demo.counts["payments"] / DEFAULT_SIZE <= 10
    assert 24 <= demo.counts["interactions"] / DEFAULT_SIZE <= 36


# --- customers --------------------------------------------------------------------------------


def test_customer_files_use_the_contract_layouts_and_encodings(demo: DemoData) -> None:
    landing = demo.root / "landing" / "customers"
    english_bytes = (landing / "crm_export_2024.csv").read_bytes()
    assert english_bytes.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM
    assert set(demo.english.columns) == CUSTOMER_COLUMNS
    gbk_bytes = (landing / "客户导出_销售部.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        gbk_bytes.decode("utf-8")
    header = gbk_bytes.decode("gbk").splitlines()[0].split(",")
    # Every Chinese header is a contract alias; English only where no alias exists.
    assert {"客户编号", "客户名称", "客户类型", "省份", "城市", "负责人", "创建时间"} <= set(header)
    assert {CHINESE_ALIASES.get(h, h) for h in header} == CUSTOMER_COLUMNS
    assert len(demo.english) > 0 and len(demo.chinese) > 0


def test_customer_ids_are_unique_strings_like_c000123(demo: DemoData) -> None:
    ids = demo.customers["customer_id"]
    assert ids.str.fullmatch(r"C\d{6}").all()
    assert ids.is_unique
    assert "C000123" in set(ids)


def test_companies_and_persons_with_industries_and_employees(demo: DemoData) -> None:
    c = demo.customers
    companies, persons = c[c.customer_type == "company"], c[c.customer_type == "person"]
    assert len(companies) > 0 and len(persons) > 0
    assert {"制造业", "零售", "互联网", "金融", "教育", "医疗", "物流"} <= set(companies.industry)
    assert (companies.industry == "").any()
    assert companies.employees.str.fullmatch(r"\d+").sum() > 0.9 * len(companies)
    assert companies.name.str.endswith("公司").all()
    assert (persons.employees == "").all()


def test_provinces_with_and_without_suffixes_and_some_explicit_regions(demo: DemoData) -> None:
    provinces = set(demo.customers.province)
    assert {"广东省", "广东", "上海市", "上海", "广西壮族自治区"} <= provinces
    assert "" in provinces
    cities = set(demo.customers.city)
    assert any(city.endswith("市") for city in cities)
    assert any(city and not city.endswith("市") for city in cities)
    regions = demo.customers.region[demo.customers.region != ""]
    assert 0 < len(regions) < 0.1 * len(demo.customers)
    assert set(regions) <= {"华北", "东北", "华东", "华中", "华南", "西南", "西北"}


def test_owners_missing_unknown_and_key_accounts(demo: DemoData) -> None:
    owners = demo.customers.owner_rep_id
    known = set(demo.reps.rep_id)
    assert (owners == "").sum() > 0
    unknown = owners[(owners != "") & ~owners.isin(known)]
    assert len(unknown) > 0 and unknown.str.fullmatch(r"R\d{3}").all()
    assert owners.isin(known).mean() > 0.9
    flags = demo.customers.is_key_account
    assert set(flags) <= {"true", "false", "是", "否"}
    assert flags.isin(["true", "是"]).sum() > 0


def test_sales_reps_in_teams_with_managers_and_inactive_reps(demo: DemoData) -> None:
    reps = demo.reps
    assert 15 <= len(reps) <= 25
    assert reps.team.nunique() >= 3
    managers = reps.manager_email[reps.manager_email != ""]
    assert managers.isin(set(reps.email)).all()
    inactive = reps[reps.active == "false"]
    assert (inactive.manager_email != "").any()
    assert (inactive.manager_email == "").any()
    assert (reps.active == "true").sum() > len(inactive)


# --- orders and payments ----------------------------------------------------------------------


def test_orders_statuses_discounts_and_same_day_orders(demo: DemoData) -> None:
    o = demo.orders
    assert set(o.status) == STATUSES
    assert 0.84 <= (o.status == "completed").mean() <= 0.92
    assert 0.2 <= (o.discount_amount > 0).mean() <= 0.4
    assert (o.currency == "CNY").all()
    assert o.order_id.is_unique and (o.amount > 0).all()
    # amounts carry at most 2 decimals
    assert ((o.amount * 100).round(6) % 1 == 0).all()
    per_day = o.groupby(["customer_id", "day"]).size()
    assert (per_day >= 2).sum() >= 10


def test_spend_per_customer_is_skewed_with_a_few_whales(demo: DemoData) -> None:
    completed = demo.orders[demo.orders.status == "completed"]
    revenue = completed.groupby("customer_id").amount.sum().sort_values(ascending=False)
    top_one_percent = revenue.head(max(1, len(revenue) // 100)).sum()
    # A lognormal/Pareto world: the top 1% of buyers hold far more than 1% of revenue.
    assert top_one_percent > 0.1 * revenue.sum()
    assert revenue.max() > 50 * revenue.median()


def test_seasonality_spring_festival_dip_and_double_11_peak(demo: DemoData) -> None:
    days = demo.orders.day
    daily_mean = len(days) / days.nunique()
    double_11 = days[(days.dt.month == 11) & (days.dt.day <= 11)]
    # Lunar New Year 2023-01-22, 2024-02-10, 2025-01-29; dip from 7 days before to 10 after.
    festivals = [date(2023, 1, 22), date(2024, 2, 10), date(2025, 1, 29)]
    window = pd.Series(False, index=days.index)
    for festival in festivals:
        start = pd.Timestamp(festival - timedelta(days=7))
        end = pd.Timestamp(festival + timedelta(days=10))
        window |= (days >= start) & (days <= end)
    festival_days = 3 * 18
    double_11_days = 3 * 11  # Nov 2022, 2023, 2024
    assert len(double_11) / double_11_days > 1.5 * daily_mean
    assert window.sum() / festival_days < 0.7 * daily_mean


def test_payments_varied_terms_and_none_for_cancelled_or_pending(demo: DemoData) -> None:
    o = demo.orders.set_index("order_id")
    p = demo.payments.copy()
    p["status"] = p.order_id.map(o.status)
    assert set(p.status) <= {"completed", "refunded"}
    p["days"] = (
        pd.to_datetime(p.paid_at).dt.normalize()
        - pd.to_datetime(p.order_id.map(o.ordered_at)).dt.normalize()
    ).dt.days
    assert (p.days >= 0).all()
    per_order = p.groupby("order_id").agg(n=("amount", "size"), paid=("amount", "sum"))
    per_order["amount"] = o.amount.reindex(per_order.index)
    assert (per_order.paid <= per_order.amount + 0.005).all()
    assert set(per_order.n) >= {1, 2, 3}
    assert ((per_order.n >= 2) & (per_order.paid < per_order.amount - 0.005)).sum() > 0
    single = per_order[per_order.n == 1].join(p.groupby("order_id").days.max())
    assert single.days.between(0, 60).mean() > 0.8  # most paid in full within 0-60 days
    assert single.days.between(61, 300).sum() > 0  # some late
    old_completed = o[(o.status == "completed") & (o.ordered_at < "2024-06-01")]
    never_paid = ~old_completed.index.isin(p.order_id)
    assert 0 < never_paid.sum() < 0.2 * len(old_completed)


# --- interactions -----------------------------------------------------------------------------


def test_interactions_cover_channels_directions_kinds_and_scores(demo: DemoData) -> None:
    i = demo.interactions
    assert set(i.channel) == CHANNELS
    assert set(i.direction) == {"inbound", "outbound"}
    assert {"complaint", "survey", "follow_up", "inquiry", "visit"} <= set(i.kind)
    sat = i.satisfaction[i.satisfaction != ""].astype(int)
    assert 0 < len(sat) < len(i) and set(sat) == {1, 2, 3, 4, 5}
    nps = i.nps[i.nps != ""].astype(int)
    assert len(nps) > 0 and nps.between(0, 10).all()
    assert (i.kind[i.nps != ""] == "survey").all()
    outbound = i[i.direction == "outbound"]
    assert (outbound.rep_id != "").all()
    assert outbound.rep_id.isin(set(demo.reps.rep_id)).all()
    assert [f.name for f in demo.interaction_files] == [
        "interactions_2022.csv",
        "interactions_2023.csv",
        "interactions_2024.csv",
        "interactions_2025.csv",
    ]


def _normalise_phone(text: str) -> str:
    """contract.md §1: digits only; a leading 0086 or 86 dropped when more than 11 digits remain."""
    digits = re.sub(r"\D", "", text)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) >= 11:
            return digits[len(prefix) :]
    return digits


def test_some_interactions_are_known_only_by_a_contact_that_matches_one_customer(
    demo: DemoData,
) -> None:
    i = demo.interactions
    anonymous = i[i.customer_id == ""]
    assert 0.03 <= len(anonymous) / len(i) <= 0.07
    emails = demo.customers.email.str.strip().str.lower()
    phones = demo.customers.phone.map(_normalise_phone)
    email_owner = emails[emails != ""].value_counts()
    phone_owner = phones[phones != ""].value_counts()
    for _, row in anonymous.iterrows():
        if row.contact_email:
            assert email_owner.get(row.contact_email.strip().lower()) == 1
        else:
            assert phone_owner.get(_normalise_phone(row.contact_phone)) == 1
    typed_phones = anonymous.contact_phone[anonymous.contact_phone != ""]
    assert typed_phones.str.startswith("+86 ").any() and typed_phones.str.startswith("0086").any()
    typed_emails = anonymous.contact_email[anonymous.contact_email != ""]
    assert (typed_emails != typed_emails.str.strip()).any()
    assert (typed_emails.str.strip() != typed_emails.str.strip().str.lower()).any()


# --- behaviour archetypes ---------------------------------------------------------------------


def _purchase_dates(demo: DemoData) -> pd.Series:
    completed = demo.orders[demo.orders.status == "completed"]
    return completed.groupby("customer_id").day.apply(lambda d: sorted(set(d)))


def test_prospects_new_customers_and_loyal_regulars(demo: DemoData) -> None:
    as_of = pd.Timestamp(AS_OF)
    dates = _purchase_dates(demo)
    prospects = set(demo.customers.customer_id) - set(demo.orders.customer_id)
    assert len(prospects) > 0.05 * DEFAULT_SIZE
    created = pd.to_datetime(
        demo.customers.set_index("customer_id").created_at.str.slice(0, 10).str.replace("/", "-")
    ).dt.normalize()
    new = [
        c for c, d in dates.items() if (as_of - d[0]).days < 90 and (as_of - created[c]).days < 90
    ]
    assert len(new) > 0.03 * DEFAULT_SIZE
    # loyal (domain §2): tenure >= 365 days and >= 4 completed orders in the last 365 days
    completed = demo.orders[demo.orders.status == "completed"]
    last_year = completed[(as_of - completed.day).dt.days < 365].groupby("customer_id").size()
    loyal = [c for c, d in dates.items() if (as_of - d[0]).days >= 365 and last_year.get(c, 0) >= 4]
    assert len(loyal) > 0.15 * DEFAULT_SIZE


def test_win_backs_return_after_a_long_gap(demo: DemoData) -> None:
    as_of = pd.Timestamp(AS_OF)
    won_back = [
        c
        for c, d in _purchase_dates(demo).items()
        if len(d) >= 2 and (as_of - d[-1]).days < 90 and (d[-1] - d[-2]).days > 365
    ]
    assert len(won_back) > 0.02 * DEFAULT_SIZE


def test_seasonal_buyers_buy_mostly_in_shopping_festivals(demo: DemoData) -> None:
    completed = demo.orders[demo.orders.status == "completed"].copy()
    festival = (completed.day.dt.month == 11) | (
        (completed.day.dt.month == 6) & (completed.day.dt.day <= 18)
    )
    share = festival.groupby(completed.customer_id).mean()
    orders = completed.groupby("customer_id").size()
    seasonal = share[(orders >= 3) & (share >= 0.6)]
    assert len(seasonal) > 0.03 * DEFAULT_SIZE


def test_fading_customers_complain_and_rate_low_before_they_stop(demo: DemoData) -> None:
    as_of = pd.Timestamp(AS_OF)
    last_order = demo.orders[demo.orders.status == "completed"].groupby("customer_id").day.max()
    i = demo.interactions[demo.interactions.customer_id != ""].copy()
    i["day"] = pd.to_datetime(i.occurred_at).dt.normalize()
    i["last_order"] = i.customer_id.map(last_order)
    around_end = i[
        (i.day >= i.last_order - pd.Timedelta(days=60))
        & (i.day <= i.last_order + pd.Timedelta(days=45))
    ]
    complaints = around_end[around_end.kind == "complaint"].groupby("customer_id").size()
    sat = around_end[around_end.satisfaction != ""]
    mean_sat = sat.satisfaction.astype(int).groupby(sat.customer_id).mean()
    stopped = last_order[(as_of - last_order).dt.days > 180].index
    fading = [c for c in stopped if complaints.get(c, 0) >= 2 and mean_sat.get(c, 5) <= 2.5]
    assert len(fading) > 0.03 * DEFAULT_SIZE


# --- time and references ----------------------------------------------------------------------


def test_every_timestamp_is_well_formed_and_not_after_as_of(demo: DemoData) -> None:
    stamps = pd.concat(
        [
            demo.english.created_at,
            demo.orders.ordered_at,
            demo.orders.updated_at,
            demo.payments.paid_at,
            demo.payments.updated_at,
            demo.interactions.occurred_at,
        ]
    )
    assert stamps.str.match(TS_PATTERN).all()
    assert stamps.max() <= END_OF_AS_OF
    assert stamps.min() >= "2022-07-01"  # three years (1,095 days) back from 2025-06-30
    slashed = demo.chinese["创建时间"]
    assert slashed.str.fullmatch(r"\d{4}/\d{2}/\d{2}").all() and slashed.max() <= "2025/06/30"


def test_nothing_is_dated_after_the_real_current_time(tmp_path: Path) -> None:
    noon = datetime(2025, 6, 30, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    _run(tmp_path, now=noon)
    latest = _query(
        tmp_path,
        "select max(ordered_at) o, max(updated_at) u from orders "
        "union all select max(paid_at), max(updated_at) from payments",
    )
    assert (latest.o <= "2025-06-30 12:00:00").all() and (latest.u <= "2025-06-30 12:00:00").all()
    files = sorted((tmp_path / "landing" / "interactions").glob("*.csv"))
    occurred = pd.concat([_read_csv(f).occurred_at for f in files])
    assert occurred.max() <= "2025-06-30 12:00:00"


def test_every_order_has_its_customer_and_every_payment_its_order(demo: DemoData) -> None:
    customers = set(demo.customers.customer_id)
    assert demo.orders.customer_id.isin(customers).all()
    assert demo.payments.order_id.isin(set(demo.orders.order_id)).all()
    named = demo.interactions.customer_id[demo.interactions.customer_id != ""]
    assert named.isin(customers).all()
    created = demo.customers.set_index("customer_id").created_at
    first_order = demo.orders.groupby("customer_id").ordered_at.min()
    english_created = created[created.str.contains("-")]
    both = first_order.index.intersection(english_created.index)
    assert (english_created[both] < first_order[both]).all()


def test_database_has_updated_at_indexes(demo: DemoData) -> None:
    indexes = _query(demo.root, "select tbl_name, sql from sqlite_master where type = 'index'")
    indexed = indexes[indexes.sql.fillna("").str.contains("updated_at")]
    assert set(indexed.tbl_name) == {"orders", "payments"}


# --- other output modes -----------------------------------------------------------------------


def test_large_sizes_write_parquet_chunks_of_text_columns(tmp_path: Path) -> None:
    shape = DemoShape(block_customers=200, csv_max_customers=100)
    counts = _run(tmp_path, shape=shape)
    parts = sorted((tmp_path / "landing" / "interactions").glob("*.parquet"))
    assert [p.name for p in parts] == [
        "interactions_part_00000.parquet",
        "interactions_part_00001.parquet",
    ]
    table = pq.read_table(parts[0])
    assert all(str(t) == "string" for t in table.schema.types)
    assert sum(pq.read_metadata(p).num_rows for p in parts) == counts["interactions"]
    assert not list((tmp_path / "landing" / "interactions").glob("*.csv"))
    ids = _query(tmp_path, "select count(distinct order_id) n, count(*) m from orders")
    assert ids.n[0] == ids.m[0] == counts["orders"]


def test_without_database_orders_and_payments_go_to_landing_files(tmp_path: Path) -> None:
    counts = generate(SMALL, SEED, AS_OF, tmp_path / "landing", None)
    orders = _read_csv(tmp_path / "landing" / "orders" / "orders.csv")
    payments = _read_csv(tmp_path / "landing" / "payments" / "payments.csv")
    assert len(orders) == counts["orders"] and len(payments) == counts["payments"]
    assert payments.order_id.isin(set(orders.order_id)).all()
    assert not (tmp_path / "source").exists()


def test_cli_skips_existing_data_and_force_replaces_only_its_own_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    args = ["--customers", str(SMALL), "--as-of", "2025-06-30", "--landing", str(landing)]
    args += ["--db-url", f"sqlite:///{tmp_path / 'source' / 'shop.db'}"]
    assert main(args) == 0
    first_run = capsys.readouterr().out
    assert "customers" in first_run and "Done:" in first_run
    before = _digest_tree(tmp_path)

    stale = landing / "interactions" / "interactions_2019.csv"
    stale.write_text("interaction_id\n", encoding="utf-8")
    foreign = landing / "customers" / "manual_fix.csv"
    foreign.write_text("customer_id,created_at\n", encoding="utf-8")
    assert main([*args, "--seed", "7"]) == 0
    assert "already exists" in capsys.readouterr().out
    assert stale.exists()
    after_skip = _digest_tree(tmp_path)
    del (
        after_skip["landing/customers/manual_fix.csv"],
        after_skip["landing/interactions/interactions_2019.csv"],
    )
    assert after_skip == before

    assert main([*args, "--seed", "7", "--force"]) == 0
    assert "Done:" in capsys.readouterr().out
    assert not stale.exists() and foreign.exists()
    replaced = _digest_tree(tmp_path)
    assert replaced["db:orders"] != before["db:orders"]
    assert (
        replaced["landing/customers/crm_export_2024.csv"]
        != before["landing/customers/crm_export_2024.csv"]
    )
