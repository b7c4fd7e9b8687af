"""Churn risk (流失预警, domain.md §4): BG/NBD p_alive plus explainable signals.

Grain: one row per scored customer (stages new/active/loyal/at_risk/won_back).
Consumers: alert planning and BI (`marts.churn_risk`).
"""

import dagster as dg
import numpy as np
import pandas as pd

from assets.classification import LIFECYCLE, PROFILE, SEGMENTS
from assets.resources import CrmResource
from crm import bgnbd
from crm.churn import PROFILE_INPUTS, score_churn
from crm.frames import read_table, replace_table
from crm.warehouse import connect

CHURN_RISK = dg.AssetKey(["marts", "churn_risk"])


def p_alive_frame(
    profile: pd.DataFrame, horizon_days: int
) -> tuple[pd.DataFrame, bgnbd.BgNbdParams | None]:
    """Fits BG/NBD on all buyers (churned included) and returns p_alive / expected orders."""
    buyers = profile[profile["orders_total"].fillna(0).astype("int64") > 0]
    out = pd.DataFrame({"customer_id": profile["customer_id"]})
    out["p_alive"] = np.nan
    out["expected_orders_90d"] = np.nan
    if buyers.empty:
        return out, None
    x = buyers["bgnbd_x"].astype("float64").to_numpy()
    t_x = buyers["bgnbd_t_x"].astype("float64").to_numpy()
    T = buyers["bgnbd_T"].astype("float64").to_numpy()
    params = bgnbd.fit(x, t_x, T)
    idx = buyers.index
    out.loc[idx, "p_alive"] = bgnbd.p_alive(params, x, t_x, T)
    out.loc[idx, "expected_orders_90d"] = bgnbd.expected_purchases(params, horizon_days, x, t_x, T)
    return out, params


@dg.asset(
    key=CHURN_RISK,
    deps=[PROFILE, SEGMENTS, LIFECYCLE],
    group_name="churn",
    kinds={"python", "duckdb"},
)
def churn_risk(context: dg.AssetExecutionContext, crm: CrmResource) -> dg.MaterializeResult:
    """Scores every customer in a scored stage; reasons carry the numbers in Chinese and English."""
    settings, rules = crm.settings(), crm.rules()
    as_of = crm.as_of_for(context)
    with connect(settings.warehouse) as con:
        profile = read_table(con, "marts.customer_profile", PROFILE_INPUTS)
        segments = read_table(
            con,
            "marts.customer_segments",
            ["customer_id", "is_key_account", "is_price_sensitive", "value_tier"],
        )
        stages = read_table(con, "marts.customer_lifecycle", ["customer_id", "stage"])
        alive, params = p_alive_frame(profile, rules.churn.expected_orders_horizon_days)
        frame = profile.merge(segments, on="customer_id").merge(stages, on="customer_id")
        frame = frame.merge(alive, on="customer_id")
        risk = score_churn(frame, rules, as_of)
        replace_table(con, "marts.churn_risk", risk, {"as_of": "DATE"})
    levels = risk["risk_level"].value_counts().to_dict()
    context.log.info(f"churn risk for {len(risk)} customers: {levels}")
    meta: dict[str, object] = {
        "scored": len(risk),
        **{f"level_{k}": int(v) for k, v in levels.items()},
    }
    if params is not None:
        meta.update(
            {
                "bgnbd_r": params.r,
                "bgnbd_alpha_days": params.alpha,
                "bgnbd_a": params.a,
                "bgnbd_b": params.b,
                "bgnbd_log_likelihood": params.log_likelihood,
                "bgnbd_converged": params.converged,
            }
        )
    return dg.MaterializeResult(metadata=meta)
