"""The rules file: every default of domain.md, overridable by a user's YAML (CRM_RULES).

Loaded and validated once per run, then passed to whatever needs it. A user's file may hold any
subset of the keys; it is deep-merged over `rules_default.yaml`. Unknown keys, wrong types and
thresholds out of order raise `RulesError` naming the key, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import math
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_RULES_PATH = Path(__file__).with_name("rules_default.yaml")


class RulesError(ValueError):
    """The rules file cannot be used; the message names the file, key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    zh: str
    en: str


class Threshold(_Strict):
    min_days: int = Field(ge=0)
    gap_multiplier: float = Field(gt=0)
    default_days: int = Field(ge=0)

    def days(self, median_gap_days: float | None) -> float:
        """max(min_days, gap_multiplier x median gap), or default_days without a rhythm."""
        if median_gap_days is None or (
            isinstance(median_gap_days, float) and math.isnan(median_gap_days)
        ):
            return float(self.default_days)
        return max(float(self.min_days), self.gap_multiplier * float(median_gap_days))


class ProfileRules(_Strict):
    recent_days: int = Field(gt=0)
    year_days: int = Field(gt=0)
    prior_year_from_days: int = Field(ge=0)
    prior_year_to_days: int = Field(gt=0)
    median_gap_min_purchase_days: int = Field(ge=2)

    @model_validator(mode="after")
    def _ordered(self) -> ProfileRules:
        if self.recent_days > self.year_days:
            raise ValueError("profile.recent_days must not exceed profile.year_days")
        if self.prior_year_from_days >= self.prior_year_to_days:
            raise ValueError("profile.prior_year_from_days must be below prior_year_to_days")
        return self


STAGES = ("prospect", "churned", "won_back", "new", "at_risk", "loyal", "active")


class LifecycleRules(_Strict):
    churn_threshold: Threshold
    at_risk_threshold: Threshold
    won_back_recent_days: int = Field(gt=0)
    new_customer_days: int = Field(gt=0)
    loyal_min_tenure_days: int = Field(ge=0)
    loyal_min_orders_365d: int = Field(ge=0)
    labels: dict[str, Label]

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleRules:
        c, r = self.churn_threshold, self.at_risk_threshold
        if r.min_days > c.min_days or r.default_days > c.default_days:
            raise ValueError(
                "lifecycle.at_risk_threshold must not exceed lifecycle.churn_threshold "
                "(min_days and default_days)"
            )
        missing = set(STAGES) - set(self.labels)
        if missing:
            raise ValueError(f"lifecycle.labels is missing {sorted(missing)}")
        return self


class ValueTierRules(_Strict):
    high_share: float = Field(gt=0, le=1)
    medium_share: float = Field(gt=0, le=1)
    labels: dict[str, Label]

    @model_validator(mode="after")
    def _ordered(self) -> ValueTierRules:
        if self.high_share > self.medium_share:
            raise ValueError("segments.value_tier.high_share must not exceed medium_share")
        return self


RFM_SEGMENTS = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose",
    "hibernating",
    "lost",
)


class RfmRules(_Strict):
    quantiles: list[float] = Field(min_length=4, max_length=4)
    grid: dict[int, list[str]]
    classes: dict[str, str]

    @model_validator(mode="after")
    def _shape(self) -> RfmRules:
        if sorted(self.quantiles) != self.quantiles or not all(0 < q < 1 for q in self.quantiles):
            raise ValueError("segments.rfm.quantiles must be 4 increasing values between 0 and 1")
        if sorted(self.grid) != [1, 2, 3, 4, 5] or any(len(row) != 5 for row in self.grid.values()):
            raise ValueError("segments.rfm.grid needs rows 1..5 with 5 segment names each")
        keys = {a + b + c for a in "HL" for b in "HL" for c in "HL"}
        if set(self.classes) != keys:
            raise ValueError(f"segments.rfm.classes needs exactly the keys {sorted(keys)}")
        return self

    def segment(self, r_score: int, f_score: int) -> str:
        return self.grid[int(r_score)][int(f_score) - 1]


class CreditGrade(_Strict):
    grade: str
    zh: str
    min_collection_ratio: float | None = Field(default=None, ge=0, le=1)
    max_paid_days: int | None = Field(default=None, ge=0)


class CreditRules(_Strict):
    billed_min_days: int = Field(ge=0)
    billed_max_days: int = Field(gt=0)
    grades: list[CreditGrade] = Field(min_length=1)
    unrated: str
    unrated_zh: str

    @model_validator(mode="after")
    def _ordered(self) -> CreditRules:
        if self.billed_min_days >= self.billed_max_days:
            raise ValueError("segments.credit.billed_min_days must be below billed_max_days")
        limited = self.grades[:-1]
        if any(g.min_collection_ratio is None or g.max_paid_days is None for g in limited):
            raise ValueError(
                "segments.credit.grades: every grade but the last needs min_collection_ratio "
                "and max_paid_days"
            )
        for better, worse in zip(limited, limited[1:], strict=False):
            if better.min_collection_ratio < worse.min_collection_ratio or (  # type: ignore[operator]
                better.max_paid_days > worse.max_paid_days  # type: ignore[operator]
            ):
                raise ValueError(
                    f"segments.credit.grades out of order: {better.grade} must be stricter "
                    f"than {worse.grade}"
                )
        return self


class RelationshipRules(_Strict):
    window_days: int = Field(gt=0)
    # at most 64 periods: the profile counts distinct periods as bits of a 64-bit integer
    quarter_bounds_days: list[int] = Field(min_length=2, max_length=65)
    partner_channels: list[str]
    partner_min_visits: int = Field(ge=0)
    partner_min_quarters: int = Field(ge=0)
    proactive_min_quarters: int = Field(ge=0)
    accountable_follow_up_days: int = Field(ge=0)
    labels: dict[str, Label]

    @model_validator(mode="after")
    def _ordered(self) -> RelationshipRules:
        b = self.quarter_bounds_days
        if b != sorted(b) or len(set(b)) != len(b) or b[0] != 0:
            raise ValueError("segments.relationship.quarter_bounds_days must rise from 0")
        if self.proactive_min_quarters > len(b) - 1 or self.partner_min_quarters > len(b) - 1:
            raise ValueError("segments.relationship: more quarters required than defined")
        return self


class LoyaltyRules(_Strict):
    disloyal_max_nps: int = Field(ge=0, le=10)
    loyal_min_orders_365d: int = Field(ge=0)
    loyal_min_nps: int = Field(ge=0, le=10)
    promoter_min_orders_365d: int = Field(ge=0)
    promoter_min_nps: int = Field(ge=0, le=10)
    labels: dict[str, Label]


class PriceSensitivityRules(_Strict):
    min_discount_share: float = Field(ge=0, le=1)
    min_orders_365d: int = Field(ge=0)


class SegmentRules(_Strict):
    value_tier: ValueTierRules
    key_account_revenue_share: float = Field(gt=0, le=1)
    rfm: RfmRules
    credit: CreditRules
    relationship: RelationshipRules
    loyalty: LoyaltyRules
    price_sensitivity: PriceSensitivityRules
    unknown_label: str
    regions: dict[str, list[str]]


class Signal(_Strict):
    weight: int = Field(ge=0)


class OverdueSignal(Signal):
    gap_multiplier: float = Field(gt=0)
    default_days: int = Field(ge=0)


class DropSignal(Signal):
    min_prior_orders: int = Field(ge=0)
    ratio: float = Field(ge=0)


class ComplaintsSignal(Signal):
    min_complaints: int = Field(ge=1)


class SatisfactionSignal(Signal):
    max_avg_satisfaction: float = Field(ge=1, le=5)


class PAliveSignal(Signal):
    min_purchase_days: int = Field(ge=1)
    max_p_alive: float = Field(ge=0, le=1)


class NeglectSignal(Signal):
    no_outbound_days: int = Field(gt=0)


class SignalRules(_Strict):
    overdue: OverdueSignal
    frequency_drop: DropSignal
    spend_drop: DropSignal
    complaints: ComplaintsSignal
    low_satisfaction: SatisfactionSignal
    low_p_alive: PAliveSignal
    neglected_key_account: NeglectSignal


class ChurnRules(_Strict):
    scored_stages: list[str]
    signals: SignalRules
    max_score: int = Field(gt=0)
    level_high_min: int = Field(ge=0)
    level_medium_min: int = Field(ge=0)
    expected_orders_horizon_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> ChurnRules:
        if self.level_medium_min > self.level_high_min:
            raise ValueError("churn.level_medium_min must not exceed churn.level_high_min")
        unknown = set(self.scored_stages) - set(STAGES)
        if unknown:
            raise ValueError(f"churn.scored_stages has unknown stages {sorted(unknown)}")
        return self

    def level(self, score: float) -> str:
        if score >= self.level_high_min:
            return "high"
        if score >= self.level_medium_min:
            return "medium"
        return "low"


class AlertRules(_Strict):
    candidate_levels: list[str]
    key_account_candidate_levels: list[str]
    cooldown_days: int = Field(ge=0)
    max_attempts: int = Field(ge=1)
    pool_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    actions: dict[str, Label]
    # None: every pending alert in the recipient's one digest (domain.md §5). A number: the
    # digest lists that many, highest score first; the rest stay pending, unattempted, for the
    # next run. For relays whose message size limit a first day's backlog exceeds.
    max_alerts_per_digest: int | None = Field(default=None, ge=1)


class IngestRules(_Strict):
    db_lookback_days: int = Field(ge=0)
    chunk_rows: int = Field(ge=1000)


class QualityRules(_Strict):
    currency: str = Field(min_length=1)
    earliest_timestamp: date
    future_tolerance_days: int = Field(ge=0)
    stale_after_days: int = Field(gt=0)
    freshness_entities: list[str]
    max_rejected_share: float = Field(ge=0, le=1)
    max_volume_drop: float = Field(ge=0, le=1)


class Rules(_Strict):
    profile: ProfileRules
    lifecycle: LifecycleRules
    segments: SegmentRules
    churn: ChurnRules
    alerts: AlertRules
    ingest: IngestRules
    quality: QualityRules

    def dbt_vars(self) -> dict[str, Any]:
        """The subset of rules the dbt models read, passed as `--vars` each run."""
        seg = self.segments
        return {
            "profile": self.profile.model_dump(),
            "credit": {
                "billed_min_days": seg.credit.billed_min_days,
                "billed_max_days": seg.credit.billed_max_days,
            },
            "relationship": {
                "window_days": seg.relationship.window_days,
                "quarter_bounds_days": seg.relationship.quarter_bounds_days,
                "partner_channels": seg.relationship.partner_channels,
                "accountable_follow_up_days": seg.relationship.accountable_follow_up_days,
            },
            "neglect_days": self.churn.signals.neglected_key_account.no_outbound_days,
            "regions": seg.regions,
            "unknown_label": seg.unknown_label,
        }


def _deep_merge(base: dict[str, Any], override: dict[str, Any], path: str = "") -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if key not in base:
            raise RulesError(f"unknown key '{where}' (known here: {', '.join(map(str, base))})")
        if isinstance(base[key], dict) and isinstance(value, dict) and key not in _REPLACED_WHOLE:
            merged[key] = _deep_merge(base[key], value, where + ".")
        else:
            merged[key] = value
    return merged


# Mappings a user replaces as a whole rather than key by key (a new region map is a new map).
_REPLACED_WHOLE = {"regions"}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise RulesError(f"rules file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RulesError(f"rules file {path} must hold a mapping of sections at the top level")
    return data


def load_rules(path: Path | str | None = None) -> Rules:
    """Defaults, overridden by the user's file when given. Raises RulesError naming key and file."""
    data = _read_yaml(DEFAULT_RULES_PATH)
    source = "the shipped defaults"
    if path is not None:
        source = str(path)
        try:
            data = _deep_merge(data, _read_yaml(Path(path)))
        except RulesError as exc:
            raise RulesError(f"rules file {path}: {exc}") from None
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise RulesError(f"rules file {source}: {problems}") from None


@cache
def default_rules() -> Rules:
    return load_rules(None)
