"""Generate a synthetic workspace in the real file formats: mixed year-to-date and quarterly reporters, several
units, currencies and label sets. Figures are random test data, not company figures.

    python benchmarks/synth.py OUT_DIR --companies 1000 --quarters 40 [--group-size 10] [--groups all|one]
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = {"yuan": 1.0, "thousand": 1e3, "ten_thousand": 1e4, "million": 1e6, "hundred_million": 1e8}
LABELS = {
    "CAS": {
        "revenue": "营业收入",
        "cost_of_revenue": "营业成本",
        "selling_expenses": "销售费用",
        "admin_expenses": "管理费用",
        "rnd_expenses": "研发费用",
        "operating_profit": "营业利润",
        "net_profit_attributable": "归属于上市公司股东的净利润",
    },
    "IFRS": {
        "revenue": "Revenue",
        "cost_of_revenue": "Cost of sales",
        "selling_expenses": "Selling and marketing expenses",
        "admin_expenses": "Administrative expenses",
        "rnd_expenses": "Research and development expenses",
        "operating_profit": "Operating profit",
        "net_profit_attributable": "Profit attributable to owners of the Company",
    },
    "US GAAP": {
        "revenue": "Total revenues",
        "cost_of_revenue": "Cost of sales",
        "selling_expenses": "Selling, general and administrative expenses",
        "rnd_expenses": "Research and development expenses",
        "operating_profit": "Income (loss) from operations",
        "net_profit_attributable": "Net income (loss) attributable to ordinary shareholders",
    },
}
SHARE = {
    "cost_of_revenue": 0.75,
    "selling_expenses": 0.08,
    "admin_expenses": 0.03,
    "rnd_expenses": 0.05,
    "operating_profit": 0.07,
    "net_profit_attributable": 0.05,
}
FX = {"HKD": 0.91, "USD": 7.1}


def quarters(n: int, last=(2025, 2)):
    y, q = last
    out = []
    for _ in range(n):
        out.append((y, q))
        y, q = (y, q - 1) if q > 1 else (y - 1, 4)
    return out[::-1]


def generate(out: Path, companies: int, nq: int, group_size: int = 10, groups: str = "all", seed: int = 7) -> Path:
    rng = random.Random(seed)
    if out.exists():
        shutil.rmtree(out)
    (out / "data" / "financials").mkdir(parents=True)
    shutil.copytree(REPO / "templates", out / "templates")
    shutil.copy(REPO / "data" / "labels.toml", out / "data" / "labels.toml")
    qs = quarters(nq)
    registry, fx_rows = [], ["currency,period,basis,rmb_per_unit,source_url"]
    for cur, rate in FX.items():
        for y, q in qs:
            for k in range(1, q + 1):
                fx_rows.append(
                    f"{cur},{y}Q{q},{3 * k}M,{rate * (1 + rng.uniform(-0.02, 0.02)):.4f},https://example.test/fx"
                )
    for i in range(companies):
        cid = f"c{i:04d}"
        std = ["CAS", "IFRS", "US GAAP"][i % 3]
        ytd = std == "CAS"
        cur = (
            "RMB"
            if std == "CAS"
            else ("HKD" if std == "IFRS" and i % 2 else ("USD" if std == "US GAAP" and i % 2 else "RMB"))
        )
        registry.append(
            f'[{cid}]\nname = "Company {i}"\nname_zh = "公司{i}"\nticker = "T{i}"\nexchange = "X"\n'
            f'standard = "{std}"\ncurrency = "{cur}"\nreporting = "{"ytd" if ytd else "quarterly"}"\n'
        )
        unit = list(UNITS)[i % len(UNITS)]
        base = rng.uniform(500, 50000) * 1e6  # yuan per quarter
        rows = ["period,basis,label,value,unit,currency,vintage,source_url"]
        cum: dict = {}
        for y, q in qs:
            revenue = base * (1 + rng.uniform(-0.1, 0.15))
            items = {"revenue": revenue, **{k: revenue * s * rng.uniform(0.8, 1.2) for k, s in SHARE.items()}}
            if std == "US GAAP":
                items.pop("admin_expenses")
            for item, v in items.items():
                if ytd:
                    cum[item] = (cum.get(item, 0) if q > 1 else 0) + v
                    v, basis = cum[item], f"{3 * q}M"
                else:
                    basis = "3M"
                shown = v / UNITS[unit] / (FX.get(cur, 1.0))
                rows.append(
                    f'{y}Q{q},{basis},"{LABELS[std][item]}",{shown:.2f},{unit},{cur},published,'
                    f"https://example.test/{cid}/{y}Q{q}"
                )
        (out / "data" / "financials" / f"{cid}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (out / "data" / "companies.toml").write_text("\n".join(registry), encoding="utf-8")
    (out / "data" / "fx.csv").write_text("\n".join(fx_rows) + "\n", encoding="utf-8")
    ids = [f"c{i:04d}" for i in range(1, companies)]
    n_groups = (len(ids) + group_size - 1) // group_size if groups == "all" else 1
    cfg = [
        '[report]\nsubject = "c0000"\ntitle = "{subject} vs peers: {quarter} synthetic briefing"\n'
        "min_peers_reported = 1\n"
    ]
    for g in range(n_groups):
        members = ", ".join(f'"{m}"' for m in ids[g * group_size : (g + 1) * group_size])
        cfg.append(f'[groups.g{g:03d}]\nlabel = "Group {g}"\nmembers = [{members}]\n')
    (out / "reportgen.toml").write_text("\n".join(cfg), encoding="utf-8")
    (out / "output").mkdir()
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--companies", type=int, default=1000)
    ap.add_argument("--quarters", type=int, default=40)
    ap.add_argument("--group-size", type=int, default=10)
    ap.add_argument("--groups", choices=["all", "one"], default="all")
    a = ap.parse_args()
    generate(a.out, a.companies, a.quarters, a.group_size, a.groups)
    print(a.out)
