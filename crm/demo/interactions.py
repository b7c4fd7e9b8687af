"""Interactions (calls, mails, visits, WeChat, tickets, surveys) of one customer block.

Grain: one contact between the company and a customer. Companies are contacted more and visited;
consumers write on WeChat and chat. Customers that fade into churn complain, and rate the service
badly, in the weeks around their last order. About 5% of interactions carry no customer_id, only
the customer's mail address or phone written the way people type them (mixed case, spaces,
+86 / 0086 prefixes), so identity matching is exercised.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from crm.demo.customers import CustomerBlock, sales_rep_ids
from crm.demo.reference import SALES_REPS
from crm.demo.shape import FADING, DemoShape
from crm.demo.timeline import Timeline, format_timestamps, sample_seconds_of_day
from crm.schemas import CHANNELS, DIRECTIONS, INTERACTIONS, KINDS

# The contract's columns, in the contract's order (declared once in crm/schemas.py).
INTERACTION_COLUMNS: tuple[str, ...] = INTERACTIONS.column_names
_CH = {name: i for i, name in enumerate(CHANNELS)}
_KIND = {name: i for i, name in enumerate(KINDS)}
_OUTBOUND = DIRECTIONS.index("outbound")
_INBOUND = DIRECTIONS.index("inbound")
_COMPLAINT_CHANNELS = np.array(
    [_CH["phone"], _CH["ticket"], _CH["chat"], _CH["wechat"], _CH["email"]]
)
_MAIL_CHANNELS = np.array([_CH["email"], _CH["chat"]])
_SATISFACTION_NOISE = 0.8
_NPS_PER_MOOD_POINT = 2.2  # mood 4 -> NPS ~8, mood 2 -> NPS ~4
_NPS_OFFSET = -0.5
_NPS_NOISE = 1.5
_TROUBLE_MOOD_PENALTY = 2.0  # satisfaction of a fading customer once trouble starts
_MAX_SATISFACTION, _MIN_SATISFACTION, _MAX_NPS = 5, 1, 10


def _counts_and_windows(
    rng: np.random.Generator,
    block: CustomerBlock,
    timeline: Timeline,
    shape: DemoShape,
    stop: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(block)
    mean = np.where(
        block.is_company, shape.interactions_mean_company, shape.interactions_mean_person
    )
    mean = mean * np.asarray(shape.interactions_archetype_factor)[block.archetype]
    spread = rng.gamma(shape.interactions_gamma_shape, 1.0 / shape.interactions_gamma_shape, n)
    first = block.created_offset + 1
    last = np.full(n, timeline.last_offset)
    fading = block.archetype == FADING
    last = np.where(fading, np.minimum(stop + shape.fading_tail_days, last), last)
    counts = np.where(first <= last, rng.poisson(mean * spread), 0)
    return counts, first, last


def _kinds(rng: np.random.Generator, channel: np.ndarray, direction: np.ndarray, shape: DemoShape):
    n = len(channel)
    outbound_kind = rng.choice(len(KINDS), size=n, p=shape.outbound_kind_shares)
    inbound_kind = rng.choice(len(KINDS), size=n, p=shape.inbound_kind_shares)
    kind = np.where(direction == _OUTBOUND, outbound_kind, inbound_kind)
    kind = np.where(channel == _CH["survey"], _KIND["survey"], kind)
    return np.where((channel == _CH["visit"]) & (direction == _OUTBOUND), _KIND["visit"], kind)


def _email_variants(rng: np.random.Generator, emails: np.ndarray) -> list[str]:
    """How people type an address: upper case, capitalised, stray spaces."""
    styles = rng.integers(0, 4, len(emails))
    typed = []
    for email, style in zip(emails, styles, strict=True):
        if style == 0:
            typed.append(f" {email.upper()}")
        elif style == 1:
            typed.append(f"{email[0].upper()}{email[1:]} ")
        elif style == 2:
            typed.append(f"  {email.title()}  ")
        else:
            typed.append(email)
    return typed


def _phone_variants(rng: np.random.Generator, phones: np.ndarray) -> list[str]:
    """How people type a mobile number: +86 138-0013-8000, 0086..., 86 138 0013 8000, plain."""
    styles = rng.integers(0, 5, len(phones))
    typed = []
    for d, style in zip(phones, styles, strict=True):
        if style == 0:
            typed.append(f"+86 {d[:3]}-{d[3:7]}-{d[7:]}")
        elif style == 1:
            typed.append(f"0086{d}")
        elif style == 2:
            typed.append(f"86 {d[:3]} {d[3:7]} {d[7:]}")
        elif style == 3:
            typed.append(f"{d[:3]}-{d[3:7]}-{d[7:]}")
        else:
            typed.append(d)
    return typed


def _anonymise(
    rng: np.random.Generator,
    pos: np.ndarray,
    channel: np.ndarray,
    block: CustomerBlock,
    shape: DemoShape,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """customer_id / contact_email / contact_phone: ~5% known only by a contact detail."""
    n = len(pos)
    email = block.email[pos]
    phone = block.phone_digits[pos]
    anonymous = (rng.random(n) < shape.anonymous_share) & ((email != "") | (phone != ""))
    by_email = anonymous & (email != "") & (np.isin(channel, _MAIL_CHANNELS) | (phone == ""))
    by_phone = anonymous & ~by_email
    contact_email = np.full(n, None, dtype=object)
    contact_phone = np.full(n, None, dtype=object)
    contact_email[by_email] = _email_variants(rng, email[by_email])
    contact_phone[by_phone] = _phone_variants(rng, phone[by_phone])
    customer_id = block.customer_id[pos].copy()
    customer_id[anonymous] = None
    return customer_id, contact_email, contact_phone


def _rep_ids(
    rng: np.random.Generator, pos: np.ndarray, direction: np.ndarray, block: CustomerBlock, shape
) -> np.ndarray:
    """Outbound contact is always made by a rep: the owner, or an active colleague."""
    n = len(pos)
    reps = sales_rep_ids()
    active = np.array([i for i, r in enumerate(SALES_REPS) if r[5]])
    owner = block.owner_index[pos]
    stand_in = active[rng.integers(0, len(active), n)]
    acting = np.where(owner >= 0, owner, stand_in)
    outbound = direction == _OUTBOUND
    inbound_with_rep = ~outbound & (owner >= 0) & (rng.random(n) < shape.inbound_rep_share)
    rep = np.full(n, None, dtype=object)
    rep[outbound] = reps[acting[outbound]]
    rep[inbound_with_rep] = reps[owner[inbound_with_rep]]
    return rep


def _scores(
    rng: np.random.Generator,
    kind: np.ndarray,
    mood: np.ndarray,
    shape: DemoShape,
) -> tuple[np.ndarray, np.ndarray]:
    """satisfaction 1-5 on some interactions, NPS 0-10 on most surveys; None elsewhere."""
    n = len(kind)
    has_satisfaction = rng.random(n) < np.asarray(shape.satisfaction_share_by_kind)[kind]
    rated = np.rint(mood + _SATISFACTION_NOISE * rng.standard_normal(n))
    complaint_score = rng.integers(
        shape.complaint_satisfaction[0], shape.complaint_satisfaction[1] + 1, n
    )
    rated = np.where(kind == _KIND["complaint"], complaint_score, rated)
    rated = np.clip(rated, _MIN_SATISFACTION, _MAX_SATISFACTION).astype(np.int64)
    has_nps = (kind == _KIND["survey"]) & (rng.random(n) < shape.nps_share_of_surveys)
    nps = np.rint(_NPS_PER_MOOD_POINT * mood + _NPS_OFFSET + _NPS_NOISE * rng.standard_normal(n))
    nps = np.clip(nps, 0, _MAX_NPS).astype(np.int64)
    satisfaction_text = np.where(has_satisfaction, rated.astype(str), None)
    nps_text = np.where(has_nps, nps.astype(str), None)
    return satisfaction_text, nps_text


def make_interactions(
    rng: np.random.Generator,
    block: CustomerBlock,
    timeline: Timeline,
    shape: DemoShape,
    first_number: int,
    last_order_day: np.ndarray,
) -> pa.Table:
    """Interactions of the block; fading customers' trouble centres on their last order day."""
    counts, first, last = _counts_and_windows(rng, block, timeline, shape, last_order_day)
    pos = np.repeat(np.arange(len(block)), counts)
    n = len(pos)
    days = rng.integers(first[pos], last[pos] + 1)
    company = block.is_company[pos]
    channel = np.where(
        company,
        rng.choice(len(CHANNELS), size=n, p=shape.channel_shares_company),
        rng.choice(len(CHANNELS), size=n, p=shape.channel_shares_person),
    )
    outbound_p = np.asarray(shape.outbound_share_by_channel)[channel]
    direction = np.where(rng.random(n) < outbound_p, _OUTBOUND, _INBOUND)
    kind = _kinds(rng, channel, direction, shape)

    fading = block.archetype[pos] == FADING
    stop = last_order_day[pos]
    trouble_first = np.maximum(stop - shape.fading_trouble_before_days, first[pos])
    trouble_last = np.maximum(
        np.minimum(stop + shape.fading_trouble_after_days, last[pos]), trouble_first
    )
    trouble = fading & (rng.random(n) < shape.fading_trouble_share)
    days = np.where(trouble, rng.integers(trouble_first, trouble_last + 1), days)
    channel = np.where(
        trouble, _COMPLAINT_CHANNELS[rng.integers(0, len(_COMPLAINT_CHANNELS), n)], channel
    )
    direction = np.where(trouble, _INBOUND, direction)
    kind = np.where(trouble, _KIND["complaint"], kind)
    unhappy = fading & (days >= trouble_first)
    mood = np.where(unhappy, block.mood[pos] - _TROUBLE_MOOD_PENALTY, block.mood[pos])
    satisfaction, nps = _scores(rng, kind, mood, shape)

    seconds = timeline.seconds(days, sample_seconds_of_day(rng, company, shape))
    customer_id, contact_email, contact_phone = _anonymise(rng, pos, channel, block, shape)
    rep = _rep_ids(rng, pos, direction, block, shape)
    keep = seconds <= timeline.cutoff_seconds
    order = np.flatnonzero(keep)[np.lexsort((pos[keep], seconds[keep]))]
    numbers = np.arange(first_number, first_number + len(order))
    return pa.table(
        {
            "interaction_id": pa.array([f"I{k:010d}" for k in numbers], type=pa.string()),
            "customer_id": pa.array(customer_id[order], type=pa.string()),
            "contact_email": pa.array(contact_email[order], type=pa.string()),
            "contact_phone": pa.array(contact_phone[order], type=pa.string()),
            "occurred_at": format_timestamps(seconds[order]),
            "channel": pa.array(np.array(CHANNELS, dtype=object)[channel[order]], type=pa.string()),
            "direction": pa.array(
                np.array(DIRECTIONS, dtype=object)[direction[order]], type=pa.string()
            ),
            "kind": pa.array(np.array(KINDS, dtype=object)[kind[order]], type=pa.string()),
            "rep_id": pa.array(rep[order], type=pa.string()),
            "satisfaction": pa.array(satisfaction[order], type=pa.string()),
            "nps": pa.array(nps[order], type=pa.string()),
        }
    )
