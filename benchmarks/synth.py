"""Generate a synthetic workspace in the real file formats: mixed year-to-date and quarterly reporters, several
units, currencies and label sets. Figures are random test data, not company figures.

    python benchmarks/synth.py OUT_DIR --companies 1000 --quarters 40 [--group-size 10] [--groups all|one|big]
    python benchmarks/synth.py OUT_DIR --preset scale10k     # 10,000 companies x 40 quarters, groups of 10
    python benchmarks/synth.py OUT_DIR --preset peers100     # 100 companies, one group of 30 peers, then tens

Groups: "all" puts every company after the subject in groups of `group_size`; "one" makes a single group of
`group_size`; "big" makes a first group of `big_group` peers and the rest in groups of `group_size`. Names are
"Company N" (`names="plain"`) or varied, long and short, Latin and Chinese (`names="varied"`), so charts can be
checked for overlapping labels.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: where the templates and the label map are copied from (a source tree under test may have its own)
SOURCE = REPO
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
PRESETS = {
    "scale1k": {"companies": 1000, "nq": 40, "groups": "all"},
    "scale10k": {"companies": 10000, "nq": 40, "groups": "all"},
    "peers100": {"companies": 100, "nq": 12, "groups": "big", "big_group": 30, "names": "varied"},
}
_WORDS = ["Zhejiang", "Huayang", "Golden", "Dragon", "Pacific", "Shenzhen", "Everbright", "Sunrise", "Jiangsu",
          "Northern", "Orient", "Silver", "Harbour", "Greatwall", "Lotus", "Phoenix", "Summit", "Jade"]  # fmt: skip
_KINDS = ["Electric", "Motors", "Appliances", "Technology", "Holdings", "Industrial", "Mobile", "Auto", "Home"]
_ZH = ["华", "阳", "金", "龙", "东", "方", "电", "器", "科", "技", "汽", "车", "集", "团", "美", "家"]


def company_name(i: int, rng: random.Random, names: str) -> tuple[str, str]:
    """(name, name_zh) of the i-th synthetic company."""
    if names == "plain":
        return f"Company {i}", f"公司{i}"
    k = i % 4
    if k == 0:  # short
        name = f"{rng.choice(_WORDS)} {i}"
    elif k == 3:  # long: shortened with an ellipsis in charts
        name = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)} {rng.choice(_KINDS)} Group Co. {i}"
    else:
        name = f"{rng.choice(_WORDS)} {rng.choice(_KINDS)} {i}"
    return name, "".join(rng.choice(_ZH) for _ in range(2 + i % 4)) + str(i)


def quarters(n: int, last=(2025, 2)):
    y, q = last
    out = []
    for _ in range(n):
        out.append((y, q))
        y, q = (y, q - 1) if q > 1 else (y - 1, 4)
    return out[::-1]


def generate(
    out: Path,
    companies: int,
    nq: int,
    group_size: int = 10,
    groups: str = "all",
    seed: int = 7,
    big_group: int = 30,
    names: str = "plain",
) -> Path:
    """Write the workspace at `out` (replacing it) and return it."""
    rng = random.Random(seed)
    width = max(4, len(str(companies - 1)))
    if out.exists():
        shutil.rmtree(out)
    (out / "data" / "financials").mkdir(parents=True)
    shutil.copytree(SOURCE / "templates", out / "templates")
    shutil.copy(SOURCE / "data" / "labels.toml", out / "data" / "labels.toml")
    qs = quarters(nq)
    registry, fx_rows = [], ["currency,period,basis,rmb_per_unit,source_url"]
    for cur, rate in FX.items():
        for y, q in qs:
            for k in range(1, q + 1):
                fx_rows.append(
                    f"{cur},{y}Q{q},{3 * k}M,{rate * (1 + rng.uniform(-0.02, 0.02)):.4f},https://example.test/fx"
                )
    for i in range(companies):
        cid = f"c{i:0{width}d}"
        std = ["CAS", "IFRS", "US GAAP"][i % 3]
        ytd = std == "CAS"
        cur = (
            "RMB"
            if std == "CAS"
            else ("HKD" if std == "IFRS" and i % 2 else ("USD" if std == "US GAAP" and i % 2 else "RMB"))
        )
        name, name_zh = company_name(i, rng, names)
        registry.append(
            f'[{cid}]\nname = "{name}"\nname_zh = "{name_zh}"\nticker = "T{i}"\nexchange = "X"\n'
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
    ids = [f"c{i:0{width}d}" for i in range(1, companies)]
    if groups == "one":
        parts = [ids[:group_size]]
    else:
        first = ids[:big_group] if groups == "big" else []
        rest = ids[len(first) :]
        parts = ([first] if first else []) + [rest[k : k + group_size] for k in range(0, len(rest), group_size)]
    cfg = [
        '[report]\nsubject = "c0000"\ntitle = "{subject} vs peers: {quarter} synthetic briefing"\n'
        "min_peers_reported = 1\n"
    ]
    for g, part in enumerate(parts):
        members = ", ".join(f'"{m}"' for m in part)
        cfg.append(f'[groups.g{g:03d}]\nlabel = "Group {g}"\nmembers = [{members}]\n')
    (out / "reportgen.toml").write_text("\n".join(cfg), encoding="utf-8")
    (out / "output").mkdir()
    return out


def preset(out: Path, name: str) -> Path:
    """One of the benchmark workspaces (PRESETS) at `out`."""
    return generate(out, **PRESETS[name])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a workspace the benchmarks use (overrides the rest)")
    ap.add_argument("--companies", type=int, default=1000)
    ap.add_argument("--quarters", type=int, default=40)
    ap.add_argument("--group-size", type=int, default=10)
    ap.add_argument("--groups", choices=["all", "one", "big"], default="all")
    ap.add_argument("--big-group", type=int, default=30, help="peers in the first group (--groups big)")
    ap.add_argument("--names", choices=["plain", "varied"], default="plain")
    a = ap.parse_args()
    if a.preset:
        preset(a.out, a.preset)
    else:
        generate(a.out, a.companies, a.quarters, a.group_size, a.groups, big_group=a.big_group, names=a.names)
    print(a.out)
