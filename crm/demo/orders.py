"""Orders and payments of one customer block (the operational database's tables).

Grain: one order (`orders`), one payment (`payments`). Orders follow each customer's archetype
window, the shopping calendar (Spring Festival dip, 618, Double 11) and a lognormal spend level
with a Pareto tail (whales). Payments follow the customer's payment habits: mostly paid in full
within 0-60 days, some late, some in 2-3 instalments (some never completed), some never paid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm.demo import reference as ref
from crm.demo.customers import CustomerBlock
from crm.demo.shape import (
    FADING,
    NEVER_PAID,
    NEW,
    PAID_LATE,
    PAID_PARTLY,
    PAID_PROMPTLY,
    PROSPECT,
    SEASONAL,
    WIN_BACK,
    DemoShape,
)
from crm.demo.timeline import (
    SECONDS_PER_DAY,
    Timeline,
    format_timestamps,
    sample_days,
    sample_seconds_of_day,
)
from crm.schemas import ORDER_STATUSES

ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "ordered_at",
    "amount",
    "discount_amount",
    "currency",
    "status",
    "channel",
    "product_category",
    "updated_at",
)
PAYMENT_COLUMNS: tuple[str, ...] = ("payment_id", "order_id", "paid_at", "amount", "updated_at")
AMOUNT_COLUMNS: frozenset[str] = frozenset({"amount", "discount_amount"})

COMPLETED, CANCELLED, REFUNDED, PENDING = (
    ORDER_STATUSES.index(status) for status in ("completed", "cancelled", "refunded", "pending")
)
_DAYS_PER_YEAR = 365.0
# How long after ordering a status change happens, in seconds: (min, max) per status.
_STATUS_CHANGE_SECONDS: dict[int, tuple[int, int]] = {
    COMPLETED: (1 * SECONDS_PER_DAY, 10 * SECONDS_PER_DAY),  # delivery confirmed
    CANCELLED: (600, 2 * SECONDS_PER_DAY),
    REFUNDED: (3 * SECONDS_PER_DAY, 30 * SECONDS_PER_DAY),
    PENDING: (0, 1),
}
_PAYMENT_DELAY_SECONDS = (60, 7200)  # a payment lands minutes to hours after its due day starts
_MAX_INSTALMENTS = 3


@dataclass
class OrderBlock:
    customer_pos: np.ndarray  # index into the customer block
    seconds: np.ndarray
    amount_cents: np.ndarray
    discount_cents: np.ndarray
    status: np.ndarray
    updated_seconds: np.ndarray
    order_id: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)

    def last_order_day(self, customers: int, timeline: Timeline, default: np.ndarray) -> np.ndarray:
        """Day offset of each customer's last order; `default` for customers without one."""
        last = np.full(customers, -1, dtype=np.int64)
        np.maximum.at(last, self.customer_pos, timeline.day_offset(self.seconds))
        return np.where(last >= 0, last, default)


def _order_counts(rng: np.random.Generator, block: CustomerBlock, shape: DemoShape) -> np.ndarray:
    """Orders in the main buying window per customer (win-backs add one return order later)."""
    active_days = np.maximum(block.window_last - block.window_first + 1, 1)
    rate = np.asarray(shape.orders_per_year)[block.archetype] / _DAYS_PER_YEAR
    by_rate = rng.poisson(rate * active_days * block.intensity)
    new = 1 + rng.poisson(shape.new_orders_mean * block.intensity)
    win_back = 2 + rng.poisson(shape.win_back_early_orders_mean * block.intensity)
    counts = np.where(block.archetype == NEW, new, np.maximum(by_rate, 1))
    counts = np.where(block.archetype == WIN_BACK, win_back, counts)
    return np.where(block.archetype == PROSPECT, 0, counts).astype(np.int64)


def _order_days(
    rng: np.random.Generator,
    block: CustomerBlock,
    pos: np.ndarray,
    shop_cdf: np.ndarray,
    seasonal_cdf: np.ndarray,
) -> np.ndarray:
    first = block.window_first[pos]
    last = block.window_last[pos]
    seasonal = block.archetype[pos] == SEASONAL
    days = sample_days(rng, shop_cdf, first, last, fading=block.archetype[pos] == FADING)
    seasonal_days = sample_days(rng, seasonal_cdf, first[seasonal], last[seasonal])
    days[seasonal] = seasonal_days
    return days


def _add_same_day_orders(
    rng: np.random.Generator, pos: np.ndarray, days: np.ndarray, shape: DemoShape
) -> np.ndarray:
    """Move some orders onto the customer's previous order day (several orders on one day)."""
    same_customer = np.zeros(len(pos), dtype=bool)
    same_customer[1:] = pos[1:] == pos[:-1]
    move = same_customer & (rng.random(len(pos)) < shape.same_day_share)
    previous = np.roll(days, 1)
    return np.where(move, previous, days)


def make_orders(
    rng: np.random.Generator,
    block: CustomerBlock,
    timeline: Timeline,
    shape: DemoShape,
    shop_cdf: np.ndarray,
    seasonal_cdf: np.ndarray,
    first_order_number: int,
) -> OrderBlock:
    counts = _order_counts(rng, block, shape)
    pos = np.repeat(np.arange(len(block)), counts)
    days = _order_days(rng, block, pos, shop_cdf, seasonal_cdf)
    returning = np.flatnonzero(block.return_offset >= 0)
    pos = np.concatenate([pos, returning])
    days = np.concatenate([days, block.return_offset[returning]])
    order = np.lexsort((days, pos))
    pos, days = pos[order], days[order]
    days = _add_same_day_orders(rng, pos, days, shape)
    seconds = timeline.seconds(days, sample_seconds_of_day(rng, block.is_company[pos], shape))
    keep = seconds <= timeline.cutoff_seconds
    pos, seconds = pos[keep], seconds[keep]
    chronological = np.lexsort((pos, seconds))
    pos, seconds = pos[chronological], seconds[chronological]

    n = len(pos)
    gross = block.spend_cents[pos] * np.exp(shape.order_noise_sigma * rng.standard_normal(n))
    gross = np.maximum(np.round(gross), shape.min_order_cents).astype(np.int64)
    discounted = rng.random(n) < block.discount_propensity[pos]
    fraction = rng.uniform(*shape.discount_fraction, n)
    discount = np.where(discounted, np.round(gross * fraction), 0).astype(np.int64)
    status = rng.choice(len(ORDER_STATUSES), size=n, p=shape.status_shares)
    change_low = np.array([_STATUS_CHANGE_SECONDS[s][0] for s in range(len(ORDER_STATUSES))])
    change_high = np.array([_STATUS_CHANGE_SECONDS[s][1] for s in range(len(ORDER_STATUSES))])
    updated = seconds + rng.integers(change_low[status], change_high[status])
    # A change that would happen after the cutoff has not happened yet: the order still waits.
    not_yet = updated > timeline.cutoff_seconds
    status = np.where(not_yet, PENDING, status)
    updated = np.where(not_yet, seconds, updated)
    numbers = np.arange(first_order_number, first_order_number + n)
    return OrderBlock(
        customer_pos=pos,
        seconds=seconds,
        amount_cents=gross - discount,
        discount_cents=discount,
        status=status,
        updated_seconds=updated,
        order_id=np.array([f"O{k:09d}" for k in numbers], dtype=object),
    )


def format_cents(cents: np.ndarray) -> pa.Array:
    """Amounts as text with exactly two decimals (e.g. 1234.50), vectorised through Arrow."""
    cents_arr = pa.array(cents.astype(np.int64))
    whole = pc.cast(pc.divide(cents_arr, 100), pa.string())
    fraction = pc.utf8_lpad(
        pc.cast(pc.remainder(cents_arr, 100), pa.string()), width=2, padding="0"
    )
    return pc.binary_join_element_wise(whole, fraction, ".")


def _pick_by_type(
    rng: np.random.Generator,
    is_company: np.ndarray,
    company: tuple[str, ...],
    person: tuple[str, ...],
) -> pa.Array:
    n = len(is_company)
    values = np.where(
        is_company,
        np.array(company, dtype=object)[rng.integers(0, len(company), n)],
        np.array(person, dtype=object)[rng.integers(0, len(person), n)],
    )
    return pa.array(values, type=pa.string())


def orders_table(
    rng: np.random.Generator, orders: OrderBlock, block: CustomerBlock, currency: str
) -> pa.Table:
    """The `orders` rows of this block as an all-text table (contract §1 layout + updated_at)."""
    is_company = block.is_company[orders.customer_pos]
    return pa.table(
        {
            "order_id": pa.array(orders.order_id, type=pa.string()),
            "customer_id": pa.array(block.customer_id[orders.customer_pos], type=pa.string()),
            "ordered_at": format_timestamps(orders.seconds),
            "amount": format_cents(orders.amount_cents),
            "discount_amount": format_cents(orders.discount_cents),
            "currency": pa.array([currency] * len(orders), type=pa.string()),
            "status": pa.array(
                np.array(ORDER_STATUSES, dtype=object)[orders.status], type=pa.string()
            ),
            "channel": _pick_by_type(
                rng, is_company, ref.ORDER_CHANNELS_COMPANY, ref.ORDER_CHANNELS_PERSON
            ),
            "product_category": _pick_by_type(
                rng, is_company, ref.CATEGORIES_COMPANY, ref.CATEGORIES_PERSON
            ),
            "updated_at": format_timestamps(orders.updated_seconds),
        }
    )


def _payment_terms(
    rng: np.random.Generator, payer_type: np.ndarray, shape: DemoShape
) -> np.ndarray:
    cumulative = np.cumsum(np.asarray(shape.terms_by_payer), axis=1)[payer_type]
    return (rng.random(len(payer_type))[:, None] > cumulative).sum(axis=1).clip(0, NEVER_PAID)


def _instalment_days(
    rng: np.random.Generator, terms: np.ndarray, is_company: np.ndarray, shape: DemoShape
) -> tuple[np.ndarray, np.ndarray]:
    """Per order: number of payments and the delay (days) of the first one."""
    n = len(terms)
    prompt = np.minimum(
        rng.exponential(shape.prompt_days_company_mean, n).astype(np.int64), shape.prompt_days_max
    )
    prompt = np.where(is_company, prompt, 0)  # consumers pay when they order
    late = rng.integers(shape.late_days[0], shape.late_days[1] + 1, n)
    partial_first = rng.integers(0, shape.partial_first_days_max + 1, n)
    first_delay = np.select(
        [terms == PAID_PROMPTLY, terms == PAID_LATE, terms == PAID_PARTLY],
        [prompt, late, partial_first],
        0,
    )
    parts = np.where(terms == PAID_PARTLY, rng.integers(2, _MAX_INSTALMENTS + 1, n), 1)
    parts = np.where(terms == NEVER_PAID, 0, parts)
    return parts, first_delay


def _split_cents(
    rng: np.random.Generator,
    amount: np.ndarray,
    parts: np.ndarray,
    order_idx: np.ndarray,
    part_no: np.ndarray,
) -> np.ndarray:
    """Split each order's amount into its instalments; the parts add up exactly to the amount."""
    weights = rng.uniform(0.2, 1.0, len(order_idx))
    totals = np.bincount(order_idx, weights=weights, minlength=len(amount))
    share = np.floor(amount[order_idx] * weights / totals[order_idx]).astype(np.int64)
    paid_before_last = np.bincount(
        order_idx, weights=np.where(part_no < parts[order_idx] - 1, share, 0), minlength=len(amount)
    )
    last_part = amount[order_idx] - paid_before_last[order_idx].astype(np.int64)
    return np.where(part_no == parts[order_idx] - 1, last_part, share)


def make_payments(
    rng: np.random.Generator,
    orders: OrderBlock,
    block: CustomerBlock,
    timeline: Timeline,
    shape: DemoShape,
    first_payment_number: int,
) -> pa.Table:
    """Payments of completed and refunded orders (cancelled and pending orders are unpaid)."""
    billed = np.flatnonzero((orders.status == COMPLETED) | (orders.status == REFUNDED))
    pos = orders.customer_pos[billed]
    terms = _payment_terms(rng, block.payer_type[pos], shape)
    parts, first_delay = _instalment_days(rng, terms, block.is_company[pos], shape)
    order_idx = np.repeat(np.arange(len(billed)), parts)
    starts = np.cumsum(parts) - parts
    part_no = np.arange(len(order_idx)) - starts[order_idx]
    amount = orders.amount_cents[billed]
    cents = _split_cents(rng, amount, parts, order_idx, part_no)
    gaps = rng.integers(shape.partial_next_days[0], shape.partial_next_days[1] + 1, len(order_idx))
    gaps = np.where(part_no == 0, 0, gaps)
    cumulative_gap = _cumsum_within(gaps, order_idx, starts)
    delay_days = first_delay[order_idx] + cumulative_gap
    delay_seconds = delay_days * SECONDS_PER_DAY + rng.integers(
        *_PAYMENT_DELAY_SECONDS, len(order_idx)
    )
    paid = orders.seconds[billed][order_idx] + delay_seconds
    is_last_part = part_no == parts[order_idx] - 1
    drops_last = (terms[order_idx] == PAID_PARTLY) & is_last_part
    drops_last &= rng.random(len(order_idx)) < shape.partial_missing_last_share
    keep = (paid <= timeline.cutoff_seconds) & ~drops_last
    paid, cents, order_idx = paid[keep], cents[keep], order_idx[keep]
    chronological = np.lexsort((order_idx, paid))
    paid, cents, order_idx = paid[chronological], cents[chronological], order_idx[chronological]
    numbers = np.arange(first_payment_number, first_payment_number + len(paid))
    paid_text = format_timestamps(paid)
    return pa.table(
        {
            "payment_id": pa.array([f"P{k:09d}" for k in numbers], type=pa.string()),
            "order_id": pa.array(orders.order_id[billed][order_idx], type=pa.string()),
            "paid_at": paid_text,
            "amount": format_cents(cents),
            "updated_at": paid_text,
        }
    )


def _cumsum_within(values: np.ndarray, group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running sum of `values` restarting at each group (rows are grouped and in order)."""
    running = np.cumsum(values)
    before_group = running[starts[group]] - values[starts[group]]
    return running - before_group
