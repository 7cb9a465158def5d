"""The pandas work of `reportgen metrics --quarter Q --format csv`, done in a plain script: the yardstick `bench.py`
measures `metrics` against.

    python benchmarks/plain_metrics.py WORKSPACE [--quarter 2025Q2] > metrics.csv

It reads the same files (the registry, the label map, the FX rates and every company's financials, whole, with
pandas' C parser), converts units and currencies to RMB million, turns year-to-date figures into single quarters
and computes the same eleven metrics for the quarter: revenue, its growth on the year and on the quarter, gross
margin and its change, the selling, SG&A, admin and R&D ratios, operating and net margin. It checks nothing, keeps
no sources and says no reasons: what is left is the arithmetic any tool has to do.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import pandas as pd

UNITS = {"yuan": 1.0, "thousand": 1e3, "ten_thousand": 1e4, "million": 1e6, "hundred_million": 1e8, "billion": 1e9}
EXPENSES = ["cost_of_revenue", "selling_expenses", "admin_expenses", "rnd_expenses", "sga"]


def read(root: Path) -> tuple[pd.DataFrame, dict]:
    companies = tomllib.loads((root / "data" / "companies.toml").read_text(encoding="utf-8"))
    labels = tomllib.loads((root / "data" / "labels.toml").read_text(encoding="utf-8"))["labels"]
    fx = pd.read_csv(root / "data" / "fx.csv", comment="#", usecols=["currency", "period", "basis", "rmb_per_unit"])
    cols = ["period", "basis", "label", "value", "unit", "currency"]
    frames = []
    for path in sorted((root / "data" / "financials").glob("*.csv")):
        df = pd.read_csv(path, usecols=cols, dtype={"value": "float64"})
        df["company"] = path.stem
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["item"] = df["label"].str.strip().map(labels)
    df = df[df["item"].notna()]
    df = df.merge(fx, on=["currency", "period", "basis"], how="left")
    df.loc[df["currency"].isin(["RMB", "CNY"]), "rmb_per_unit"] = 1.0
    df["v"] = df["value"] * df["unit"].map(UNITS) / 1e6 * df["rmb_per_unit"]
    expense = df["item"].isin(EXPENSES)
    df.loc[expense, "v"] = df.loc[expense, "v"].abs()
    return df, companies


def single_quarters(df: pd.DataFrame, companies: dict) -> pd.DataFrame:
    """(company, quarter index) x item: single-quarter figures, year-to-date ones de-cumulated."""
    year = df["period"].str[:4].astype(int)
    fq = df["period"].str[-1].astype(int)
    df = df.assign(qi=year * 4 + fq - 1, fq=fq, n=df["basis"].str[:-1].astype(int) // 3)
    ytd = df["company"].map(lambda c: companies[c].get("reporting") == "ytd")
    quarterly = df[~ytd & (df["n"] == 1)][["company", "item", "qi", "v"]]
    cum = df[ytd & (df["n"] == df["fq"])][["company", "item", "qi", "fq", "v"]]
    prev = cum[["company", "item", "qi", "v"]].assign(qi=cum["qi"] + 1).rename(columns={"v": "pv"})
    cum = cum.merge(prev, on=["company", "item", "qi"], how="left")
    cum["v"] = cum["v"].where(cum["fq"] == 1, cum["v"] - cum["pv"])
    single = pd.concat([quarterly, cum[["company", "item", "qi", "v"]]], ignore_index=True)
    return single.drop_duplicates(["company", "item", "qi"], keep="last").set_index(["company", "qi", "item"])["v"]


def metrics(single: pd.Series, qi: int) -> pd.DataFrame:
    wide = single.unstack("item")

    def at(i):
        part = wide.xs(i, level="qi") if i in wide.index.get_level_values("qi") else wide.iloc[:0].droplevel("qi")
        return part.reindex(columns=sorted(set(wide.columns) | {"gross_profit", "sga", "net_profit", *EXPENSES}))

    now, year_ago, quarter_ago = at(qi), at(qi - 4), at(qi - 1)
    idx = now.index

    def gm(f):
        return (f["gross_profit"] / f["revenue"]).fillna((f["revenue"] - f["cost_of_revenue"]) / f["revenue"])

    rev = now["revenue"]
    out = {
        "revenue": rev,
        "revenue_yoy": rev / year_ago["revenue"].reindex(idx) - 1,
        "revenue_qoq": rev / quarter_ago["revenue"].reindex(idx) - 1,
        "gross_margin": gm(now),
        "gross_margin_yoy_pp": gm(now) - gm(year_ago).reindex(idx),
        "selling_expense_ratio": (now["selling_expenses"] / rev).fillna(now["sga"] / rev),
        "sga_ratio": (now["sga"] / rev).fillna((now["selling_expenses"] + now["admin_expenses"]) / rev),
        "admin_expense_ratio": now["admin_expenses"] / rev,
        "rnd_ratio": now["rnd_expenses"] / rev,
        "operating_margin": now["operating_profit"] / rev,
        "net_margin": (now["net_profit_attributable"] / rev).fillna(now["net_profit"] / rev),
    }
    table = pd.DataFrame(out)
    table.index.name = "company"
    return table.reset_index().melt(id_vars="company", var_name="metric", value_name="value")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--quarter", default="2025Q2")
    a = ap.parse_args()
    df, companies = read(a.workspace)
    single = single_quarters(df, companies)
    qi = int(a.quarter[:4]) * 4 + int(a.quarter[-1]) - 1
    metrics(single, qi).to_csv(sys.stdout, index=False)


if __name__ == "__main__":
    main()
