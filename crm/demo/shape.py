"""The knobs of the demo data set: shares, rates and distributions, named in one place.

Why a dataclass and not the rules file: these numbers describe the *synthetic world* the demo
generator simulates (how customers behave), not a business rule the pipeline applies. Tests and
benchmarks use the shipped `DEFAULT_SHAPE`; a change here changes the generated data, never a
classification rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Behaviour archetypes (index order is the code stored per customer).
LOYAL, SEASONAL, FADING, WIN_BACK, NEW, OCCASIONAL, PROSPECT = range(7)
ARCHETYPE_NAMES: tuple[str, ...] = (
    "loyal",
    "seasonal",
    "fading",
    "win_back",
    "new",
    "occasional",
    "prospect",
)

# Payment behaviour of a customer (index order = code).
GOOD_PAYER, SLOW_PAYER, BAD_PAYER = range(3)
# Payment terms of one order (index order = code).
PAID_PROMPTLY, PAID_LATE, PAID_PARTLY, NEVER_PAID = range(4)


@dataclass(frozen=True)
class DemoShape:
    history_days: int = 3 * 365  # ~3 years of orders and interactions ending at as_of
    block_customers: int = 50_000  # customers generated (and held in memory) at a time
    csv_max_customers: int = 50_000  # above this, interactions (and file orders) go to Parquet
    archetype_shares: tuple[float, ...] = (0.30, 0.14, 0.15, 0.07, 0.08, 0.16, 0.10)
    company_share: float = 0.35  # B2B customers; the rest are persons (B2C)
    gbk_file_share: float = 0.3  # customers exported by the sales department (GBK file)
    # Customer master data quality
    empty_province_share: float = 0.02
    explicit_region_share: float = 0.03
    province_short_name_share: float = 0.4  # 广东 instead of 广东省
    city_suffix_share: float = 0.5  # 深圳市 instead of 深圳
    empty_industry_share: float = 0.06  # among companies
    empty_employees_share: float = 0.05
    email_share: float = 0.9
    phone_share: float = 0.92
    formatted_phone_share: float = 0.1  # 138-0013-8000 in the customer master
    no_owner_share: float = 0.03
    unknown_owner_share: float = 0.01
    flagged_key_account_share: float = 0.04  # among companies
    # Archetype timing (days before as_of)
    new_created_days_ago: tuple[int, int] = (2, 88)
    loyal_created_days_ago_min: int = 400
    seasonal_created_days_ago_min: int = 365
    fading_created_days_ago_min: int = 500
    fading_stop_days_ago: tuple[int, int] = (20, 700)
    fading_min_active_days: int = 200
    win_back_created_days_ago_min: int = 760
    win_back_early_span_days: tuple[int, int] = (120, 280)
    win_back_early_end_days_ago_min: int = 480  # gap before returning is > 420 days
    win_back_return_days_ago: tuple[int, int] = (2, 60)
    recent_prospect_share: float = 0.3  # prospects created in the last 90 days
    recent_days: int = 90
    # Orders: expected orders per 365 active days, by archetype (NEW / WIN_BACK are counts)
    orders_per_year: tuple[float, ...] = (9.5, 3.0, 6.0, 0.0, 0.0, 2.0, 0.0)
    new_orders_mean: float = 1.5  # plus one guaranteed order
    win_back_early_orders_mean: float = 5.0  # plus two guaranteed early orders
    intensity_gamma_shape: float = 3.0  # customer-to-customer spread of buying frequency
    company_order_factor: float = 1.2
    person_median_order_cny: float = 300.0
    company_median_order_cny: float = 6000.0
    person_spend_sigma: float = 0.8
    company_spend_sigma: float = 1.0
    order_noise_sigma: float = 0.4
    whale_share: float = 0.01
    whale_pareto_alpha: float = 1.5
    whale_spend_factor: float = 10.0
    whale_order_factor: float = 2.0
    min_order_cents: int = 100
    same_day_share: float = 0.04  # orders moved onto the customer's previous order day
    status_shares: tuple[float, ...] = (
        0.88,
        0.06,
        0.04,
        0.02,
    )  # completed/cancelled/refunded/pending
    discount_beta: tuple[float, float] = (0.9, 2.1)  # per-customer discount propensity, mean 0.3
    discount_fraction: tuple[float, float] = (0.05, 0.30)
    # Payments
    payer_shares: tuple[float, ...] = (0.75, 0.15, 0.10)
    terms_by_payer: tuple[tuple[float, ...], ...] = (
        (0.93, 0.03, 0.03, 0.01),
        (0.55, 0.25, 0.15, 0.05),
        (0.35, 0.20, 0.20, 0.25),
    )
    prompt_days_company_mean: float = 20.0
    prompt_days_max: int = 60
    late_days: tuple[int, int] = (61, 300)
    partial_first_days_max: int = 30
    partial_next_days: tuple[int, int] = (15, 90)
    partial_missing_last_share: float = 0.4  # partial orders that stay partly unpaid
    # Interactions
    interactions_mean_company: float = 49.0
    interactions_mean_person: float = 24.0
    interactions_archetype_factor: tuple[float, ...] = (1.25, 0.9, 1.0, 1.0, 0.45, 0.8, 0.35)
    interactions_gamma_shape: float = 2.0
    fading_trouble_share: float = 0.3  # of a fading customer's interactions: complaints
    fading_trouble_before_days: int = 60
    fading_trouble_after_days: int = 45
    fading_tail_days: int = 60  # interactions continue this long after the last order
    channel_shares_company: tuple[float, ...] = (0.22, 0.18, 0.10, 0.10, 0.17, 0.07, 0.09, 0.07)
    channel_shares_person: tuple[float, ...] = (0.18, 0.10, 0.02, 0.02, 0.30, 0.18, 0.11, 0.09)
    # P(outbound) per channel: phone email visit meeting wechat chat ticket survey
    outbound_share_by_channel: tuple[float, ...] = (0.5, 0.6, 0.9, 0.7, 0.5, 0.15, 0.1, 1.0)
    # kinds: inquiry follow_up complaint support survey marketing visit
    outbound_kind_shares: tuple[float, ...] = (0.05, 0.50, 0.0, 0.10, 0.0, 0.35, 0.0)
    inbound_kind_shares: tuple[float, ...] = (0.45, 0.08, 0.12, 0.35, 0.0, 0.0, 0.0)
    satisfaction_share_by_kind: tuple[float, ...] = (0.1, 0.1, 0.6, 0.6, 0.8, 0.05, 0.3)
    nps_share_of_surveys: float = 0.6
    inbound_rep_share: float = 0.3
    anonymous_share: float = 0.05  # interactions known only by contact email / phone
    mood_mean: float = 4.0
    mood_sigma: float = 0.6
    complaint_satisfaction: tuple[int, int] = (1, 2)
    # Day-of-hour profiles (hours 0..23) for B2B and B2C activity
    company_hours: tuple[float, ...] = field(
        default=(0, 0, 0, 0, 0, 0, 0, 0.5, 3, 8, 10, 9, 5, 6, 9, 10, 9, 7, 3, 1, 0.5, 0, 0, 0)
    )
    person_hours: tuple[float, ...] = field(
        default=(
            1,
            0.5,
            0.3,
            0.1,
            0.1,
            0.2,
            0.5,
            1.5,
            3,
            4,
            5,
            6,
            7,
            5,
            5,
            5,
            5,
            6,
            7,
            9,
            11,
            12,
            9,
            4,
        )
    )
    # Seasonality of orders (multipliers of the daily base rate)
    spring_festival_days: tuple[int, int] = (-7, 10)  # around the Lunar New Year
    spring_festival_factor: float = 0.35
    double11_days: tuple[int, int] = (1, 11)  # November 1-11
    double11_factor: float = 2.5
    double11_day_factor: float = 6.0  # November 11 itself
    mid_year_days: tuple[int, int] = (1, 18)  # "618" in June
    mid_year_factor: float = 1.6
    seasonal_base_factor: float = 0.15  # seasonal buyers outside the shopping festivals
    seasonal_peak_power: float = 2.0  # seasonal buyers react more strongly to the peaks


DEFAULT_SHAPE = DemoShape()
