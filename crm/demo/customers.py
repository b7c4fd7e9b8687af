"""Customers (CRM master data) and the sales organisation, one block of customers at a time.

Grain: one customer. Besides the contract columns, a block carries the hidden behaviour of each
customer (archetype, buying window, spend level, payment habits, mood) that the order, payment
and interaction generators of the same block read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crm.demo import reference as ref
from crm.demo.shape import FADING, LOYAL, NEW, OCCASIONAL, PROSPECT, SEASONAL, WIN_BACK, DemoShape
from crm.demo.timeline import (
    Timeline,
    format_dates_slashed,
    format_timestamps,
    sample_seconds_of_day,
)
from crm.rules import default_rules

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "customer_type",
    "industry",
    "region",
    "province",
    "city",
    "employees",
    "email",
    "phone",
    "owner_rep_id",
    "source_channel",
    "is_key_account",
    "created_at",
)
# The sales department's GBK export uses the contract's default Chinese aliases; columns that
# have no alias keep their English name, as mixed exports do.
CHINESE_HEADERS: dict[str, str] = {
    "customer_id": "客户编号",
    "name": "客户名称",
    "customer_type": "客户类型",
    "industry": "行业",
    "region": "区域",
    "province": "省份",
    "city": "城市",
    "email": "邮箱",
    "phone": "手机",
    "owner_rep_id": "负责人",
    "source_channel": "来源",
    "created_at": "创建时间",
}
SALES_REP_COLUMNS: tuple[str, ...] = ("rep_id", "name", "email", "manager_email", "team", "active")
_PERSON_TEAM = "电商客服组"
_PHONE_SUFFIX_MODULUS = 10**8  # 8 digits after the 3-digit mobile prefix
_PHONE_MULTIPLIER = 7919  # coprime with 10**8: a bijection, so every customer's phone is unique
_PHONE_OFFSET = 1_234_567


@dataclass
class CustomerBlock:
    """Customers of one block: contract columns (as text) plus their simulated behaviour."""

    number: np.ndarray  # 1-based global customer number
    customer_id: np.ndarray
    archetype: np.ndarray
    is_company: np.ndarray
    created_offset: np.ndarray  # day offset of created_at
    created_seconds: np.ndarray
    window_first: np.ndarray  # first possible order day (offset)
    window_last: np.ndarray  # last possible order day of the main buying period
    return_offset: np.ndarray  # win-backs: the day they buy again; -1 otherwise
    spend_cents: np.ndarray  # typical gross order value
    intensity: np.ndarray  # buying-frequency multiplier (mean 1)
    discount_propensity: np.ndarray
    payer_type: np.ndarray
    owner_index: np.ndarray  # index into SALES_REPS; -1 when none or unknown
    email: np.ndarray  # '' when missing
    phone_digits: np.ndarray  # 11 digits, '' when missing
    mood: np.ndarray  # typical satisfaction 1..5
    in_gbk_file: np.ndarray
    text: dict[str, np.ndarray]  # contract columns as text ('' = empty)

    def __len__(self) -> int:
        return len(self.number)


def customer_id_width(customers: int) -> int:
    """C000123 for up to a million customers minus one; wider ids only when needed."""
    return max(6, len(str(customers)))


def _uniform_int(
    rng: np.random.Generator, low: np.ndarray | int, high: np.ndarray | int, n: int
) -> np.ndarray:
    """Integers in [low, high] inclusive, with array bounds."""
    low_arr = np.broadcast_to(np.asarray(low, dtype=np.int64), (n,))
    high_arr = np.maximum(np.broadcast_to(np.asarray(high, dtype=np.int64), (n,)), low_arr)
    return rng.integers(low_arr, high_arr + 1)


def _created_days_ago(
    rng: np.random.Generator, archetype: np.ndarray, timeline: Timeline, shape: DemoShape
) -> np.ndarray:
    oldest = timeline.last_offset
    n = len(archetype)
    minimum = np.select(
        [
            archetype == LOYAL,
            archetype == SEASONAL,
            archetype == FADING,
            archetype == WIN_BACK,
            archetype == NEW,
            archetype == OCCASIONAL,
        ],
        [
            shape.loyal_created_days_ago_min,
            shape.seasonal_created_days_ago_min,
            shape.fading_created_days_ago_min,
            shape.win_back_created_days_ago_min,
            shape.new_created_days_ago[0],
            shape.recent_days,
        ],
        default=shape.recent_days,
    )
    maximum = np.where(archetype == NEW, shape.new_created_days_ago[1], oldest)
    days_ago = _uniform_int(rng, np.minimum(minimum, oldest), maximum, n)
    recent_prospect = (archetype == PROSPECT) & (rng.random(n) < shape.recent_prospect_share)
    return np.where(recent_prospect, rng.integers(0, shape.recent_days, n), days_ago)


def _buying_windows(
    rng: np.random.Generator, archetype: np.ndarray, created_ago: np.ndarray, shape: DemoShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, last) days-ago of the main buying period and the win-back return (or -1)."""
    n = len(archetype)
    first_ago = created_ago - 1
    last_ago = np.zeros(n, dtype=np.int64)
    stop_ago = _uniform_int(
        rng,
        shape.fading_stop_days_ago[0],
        np.minimum(shape.fading_stop_days_ago[1], created_ago - shape.fading_min_active_days),
        n,
    )
    last_ago = np.where(archetype == FADING, stop_ago, last_ago)
    span = _uniform_int(rng, *shape.win_back_early_span_days, n)
    early_end_ago = np.maximum(shape.win_back_early_end_days_ago_min, first_ago - span)
    last_ago = np.where(archetype == WIN_BACK, early_end_ago, last_ago)
    return_ago = np.where(
        archetype == WIN_BACK, _uniform_int(rng, *shape.win_back_return_days_ago, n), -1
    )
    return first_ago, np.minimum(last_ago, first_ago), return_ago


def _province_columns(
    rng: np.random.Generator, n: int, shape: DemoShape
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """province, city, explicit region and the city's canonical name for company names."""
    weights = np.array([p.weight for p in ref.PROVINCES], dtype=float)
    choice = rng.choice(len(ref.PROVINCES), size=n, p=weights / weights.sum())
    short = rng.random(n) < shape.province_short_name_share
    province = np.array(
        [
            ref.PROVINCES[c].short_name if s else ref.PROVINCES[c].full_name
            for c, s in zip(choice, short, strict=True)
        ],
        dtype=object,
    )
    city_pick = rng.random(n)
    city_plain = np.array(
        [
            ref.PROVINCES[c].cities[int(u * len(ref.PROVINCES[c].cities))]
            for c, u in zip(choice, city_pick, strict=True)
        ],
        dtype=object,
    )
    with_suffix = rng.random(n) < shape.city_suffix_share
    city = np.where(with_suffix, city_plain + "市", city_plain)
    region_of = _region_by_province()
    explicit = rng.random(n) < shape.explicit_region_share
    region = np.where(
        explicit, np.array([region_of[ref.PROVINCES[c].short_name] for c in choice]), ""
    )
    province = np.where(rng.random(n) < shape.empty_province_share, "", province)
    return province, city, region.astype(object), city_plain


def _region_by_province() -> dict[str, str]:
    """Region of each province short name, from the rules' region map (domain.md §3.8)."""
    regions = default_rules().segments.regions
    return {
        p.short_name: next(
            (region for region, names in regions.items() if p.short_name in names), ""
        )
        for p in ref.PROVINCES
    }


def _person_names(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Chinese names and the pinyin used in their mail addresses."""
    weights = np.asarray(ref.SURNAME_WEIGHTS) / np.sum(ref.SURNAME_WEIGHTS)
    surname = rng.choice(len(ref.SURNAMES), size=n, p=weights)
    given = rng.integers(0, len(ref.GIVEN_NAMES), size=n)
    names = np.array(
        [ref.SURNAMES[s][0] + ref.GIVEN_NAMES[g][0] for s, g in zip(surname, given, strict=True)],
        dtype=object,
    )
    pinyin = np.array(
        [ref.SURNAMES[s][1] + ref.GIVEN_NAMES[g][1] for s, g in zip(surname, given, strict=True)],
        dtype=object,
    )
    return names, pinyin


def _industries(rng: np.random.Generator, n: int) -> np.ndarray:
    weights = np.asarray(ref.INDUSTRY_WEIGHTS) / np.sum(ref.INDUSTRY_WEIGHTS)
    return rng.choice(len(ref.INDUSTRIES), size=n, p=weights)


def _company_names(
    rng: np.random.Generator, city_plain: np.ndarray, industry: np.ndarray, has_industry
) -> tuple[np.ndarray, np.ndarray]:
    word = rng.integers(0, len(ref.COMPANY_WORDS), size=len(city_plain))
    names = np.array(
        [
            city
            + ref.COMPANY_WORDS[w][0]
            + (ref.INDUSTRY_COMPANY_SUFFIX[i] if known else ref.GENERIC_COMPANY_SUFFIX)
            for city, w, i, known in zip(city_plain, word, industry, has_industry, strict=True)
        ],
        dtype=object,
    )
    slug = np.array([ref.COMPANY_WORDS[w][1] for w in word], dtype=object)
    return names, slug


def _phones(rng: np.random.Generator, number: np.ndarray) -> np.ndarray:
    suffix = (number * _PHONE_MULTIPLIER + _PHONE_OFFSET) % _PHONE_SUFFIX_MODULUS
    prefix = rng.integers(0, len(ref.MOBILE_PREFIXES), size=len(number))
    return np.array(
        [f"{ref.MOBILE_PREFIXES[p]}{s:08d}" for p, s in zip(prefix, suffix, strict=True)],
        dtype=object,
    )


def _owners(
    rng: np.random.Generator, is_company: np.ndarray, shape: DemoShape
) -> tuple[np.ndarray, np.ndarray]:
    """Owner rep per customer: B2B teams own companies, the e-commerce team owns consumers."""
    n = len(is_company)
    company_reps = np.array(
        [i for i, r in enumerate(ref.SALES_REPS) if r[3] != _PERSON_TEAM and r[4] is not None]
    )
    person_reps = np.array([i for i, r in enumerate(ref.SALES_REPS) if r[3] == _PERSON_TEAM])
    owner = np.where(
        is_company,
        company_reps[rng.integers(0, len(company_reps), n)],
        person_reps[rng.integers(0, len(person_reps), n)],
    )
    owner_id = np.array([ref.SALES_REPS[i][0] for i in owner], dtype=object)
    u = rng.random(n)
    none = u < shape.no_owner_share
    unknown = (u >= shape.no_owner_share) & (u < shape.no_owner_share + shape.unknown_owner_share)
    unknown_ids = np.array(
        [f"R{k:03d}" for k in rng.integers(*ref.UNKNOWN_REP_ID_RANGE, size=n)], dtype=object
    )
    owner_id = np.where(none, "", np.where(unknown, unknown_ids, owner_id))
    owner_index = np.where(none | unknown, -1, owner)
    return owner_id, owner_index


def _display_phone(digits: np.ndarray, formatted: np.ndarray) -> np.ndarray:
    return np.array(
        [
            f"{d[:3]}-{d[3:7]}-{d[7:]}" if f and d else d
            for d, f in zip(digits, formatted, strict=True)
        ],
        dtype=object,
    )


def make_customers(
    rng: np.random.Generator,
    first_number: int,
    count: int,
    id_width: int,
    timeline: Timeline,
    shape: DemoShape,
) -> CustomerBlock:
    """`count` customers numbered from `first_number`, with their behaviour for this block."""
    n = count
    number = np.arange(first_number, first_number + n, dtype=np.int64)
    customer_id = np.array([f"C{k:0{id_width}d}" for k in number], dtype=object)
    archetype = rng.choice(len(shape.archetype_shares), size=n, p=shape.archetype_shares)
    is_company = rng.random(n) < shape.company_share
    created_ago = _created_days_ago(rng, archetype, timeline, shape)
    first_ago, last_ago, return_ago = _buying_windows(rng, archetype, created_ago, shape)
    created_offset = timeline.offset_days_ago(created_ago)
    created_seconds = timeline.seconds(
        created_offset, sample_seconds_of_day(rng, is_company, shape)
    )

    is_whale = rng.random(n) < shape.whale_share
    median_cny = np.where(is_company, shape.company_median_order_cny, shape.person_median_order_cny)
    sigma = np.where(is_company, shape.company_spend_sigma, shape.person_spend_sigma)
    spend = np.exp(np.log(median_cny * 100) + sigma * rng.standard_normal(n))
    whale_boost = shape.whale_spend_factor * (1.0 + rng.pareto(shape.whale_pareto_alpha, n))
    spend = np.where(is_whale, spend * whale_boost, spend)
    intensity = rng.gamma(shape.intensity_gamma_shape, 1.0 / shape.intensity_gamma_shape, n)
    intensity = np.where(is_whale, intensity * shape.whale_order_factor, intensity)
    intensity = np.where(is_company, intensity * shape.company_order_factor, intensity)

    province, city, region, city_plain = _province_columns(rng, n, shape)
    industry_code = _industries(rng, n)
    has_industry = is_company & (rng.random(n) >= shape.empty_industry_share)
    industry = np.where(has_industry, np.array(ref.INDUSTRIES, dtype=object)[industry_code], "")
    person_name, pinyin = _person_names(rng, n)
    company_name, slug = _company_names(rng, city_plain, industry_code, has_industry)
    name = np.where(is_company, company_name, person_name)
    domain_pick = rng.integers(0, len(ref.PERSON_MAIL_DOMAINS), n)
    email = np.array(
        [
            f"contact{k}@{s}{k % 1000}.{ref.COMPANY_MAIL_TLD}"
            if company
            else f"{p}{k}@{ref.PERSON_MAIL_DOMAINS[d]}"
            for k, s, p, d, company in zip(
                number, slug, pinyin, domain_pick, is_company, strict=True
            )
        ],
        dtype=object,
    )
    email = np.where(rng.random(n) < shape.email_share, email, "")
    phone_digits = np.where(rng.random(n) < shape.phone_share, _phones(rng, number), "")
    employees = np.exp(np.log(60) + 1.3 * rng.standard_normal(n)).astype(np.int64) + 3
    employees_text = np.where(
        is_company & (rng.random(n) >= shape.empty_employees_share), employees.astype(str), ""
    ).astype(object)
    owner_id, owner_index = _owners(rng, is_company, shape)
    source = np.where(
        is_company,
        np.array(ref.SOURCE_CHANNELS_COMPANY, dtype=object)[
            rng.integers(0, len(ref.SOURCE_CHANNELS_COMPANY), n)
        ],
        np.array(ref.SOURCE_CHANNELS_PERSON, dtype=object)[
            rng.integers(0, len(ref.SOURCE_CHANNELS_PERSON), n)
        ],
    )
    key_account = is_company & (
        (rng.random(n) < shape.flagged_key_account_share) | (is_whale & (rng.random(n) < 0.5))
    )
    in_gbk_file = rng.random(n) < shape.gbk_file_share
    text = {
        "customer_id": customer_id,
        "name": name,
        "customer_type": np.where(is_company, "company", "person").astype(object),
        "industry": industry,
        "region": region,
        "province": province,
        "city": city,
        "employees": employees_text,
        "email": email,
        "phone": _display_phone(phone_digits, rng.random(n) < shape.formatted_phone_share),
        "owner_rep_id": owner_id,
        "source_channel": source,
        "is_key_account": np.where(key_account, "true", "false").astype(object),
        "created_at": np.array(format_timestamps(created_seconds).to_pylist(), dtype=object),
        "created_date_slashed": np.array(
            format_dates_slashed(created_seconds).to_pylist(), dtype=object
        ),
    }
    return CustomerBlock(
        number=number,
        customer_id=customer_id,
        archetype=archetype,
        is_company=is_company,
        created_offset=created_offset,
        created_seconds=created_seconds,
        window_first=timeline.offset_days_ago(first_ago),
        window_last=timeline.offset_days_ago(last_ago),
        return_offset=np.where(return_ago >= 0, timeline.offset_days_ago(return_ago), -1),
        spend_cents=spend,
        intensity=intensity,
        discount_propensity=rng.beta(*shape.discount_beta, n),
        payer_type=rng.choice(len(shape.payer_shares), size=n, p=shape.payer_shares),
        owner_index=owner_index,
        email=email,
        phone_digits=phone_digits,
        mood=np.clip(shape.mood_mean + shape.mood_sigma * rng.standard_normal(n), 1.0, 5.0),
        in_gbk_file=in_gbk_file,
        text=text,
    )


def customer_rows(block: CustomerBlock, gbk: bool) -> list[list[str]]:
    """Rows of one of the two customer exports (English UTF-8 or the sales department's GBK).

    The GBK export writes booleans as 是/否 and dates as YYYY/MM/DD, as Excel users do.
    """
    mask = block.in_gbk_file if gbk else ~block.in_gbk_file
    columns = []
    for name in CUSTOMER_COLUMNS:
        values = block.text[name]
        if gbk and name == "is_key_account":
            values = np.where(values == "true", "是", "否")
        if gbk and name == "created_at":
            values = block.text["created_date_slashed"]
        columns.append(values[mask])
    return [list(row) for row in zip(*columns, strict=True)]


def customer_header(gbk: bool) -> list[str]:
    return [CHINESE_HEADERS.get(c, c) if gbk else c for c in CUSTOMER_COLUMNS]


def rep_email(pinyin: str) -> str:
    return f"{pinyin}@{ref.REP_MAIL_DOMAIN}"


def sales_rep_rows() -> list[list[str]]:
    """The sales organisation: ~20 reps in teams, managers by email, some inactive."""
    pinyin_of = {r[0]: r[2] for r in ref.SALES_REPS}
    return [
        [
            rep_id,
            name,
            rep_email(pinyin),
            rep_email(pinyin_of[manager]) if manager else "",
            team,
            "true" if active else "false",
        ]
        for rep_id, name, pinyin, team, manager, active in ref.SALES_REPS
    ]


def sales_rep_ids() -> np.ndarray:
    return np.array([r[0] for r in ref.SALES_REPS], dtype=object)
