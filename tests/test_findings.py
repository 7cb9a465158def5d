"""The rules that choose the findings' comparison words, and the sentences they produce."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reportgen.findings import DEFAULT_TEMPLATES, build_findings, comparison_word
from reportgen.formats import fmt_value
from reportgen.metrics import BY_ID

WORDS = DEFAULT_TEMPLATES


@pytest.mark.parametrize(
    "subject,peer,slightly,expected",
    [
        (0.067, 0.091, 1.0, "below"),  # 2.4 pp below
        (0.067, 0.075, 1.0, "slightly below"),  # 0.8 pp below
        (0.067, 0.077, 1.0, "slightly below"),  # exactly 1.0 pp: still slightly
        (0.067, 0.0771, 1.0, "below"),  # 1.01 pp
        (0.067, 0.0674, 1.0, "in line with"),  # 0.04 pp
        (0.067, 0.0675, 1.0, "in line with"),  # 0.05 pp: the in-line edge
        (0.067, 0.060, 1.0, "slightly above"),
        (0.067, 0.050, 1.0, "above"),
        (0.067, 0.060, 0.5, "above"),  # a tighter 'slightly' from reportgen.toml
    ],
    ids=[
        "below",
        "slightly-below",
        "slightly-edge",
        "beyond-slightly",
        "in-line",
        "in-line-edge",
        "slightly-above",
        "above",
        "configured-threshold",
    ],
)
def test_comparison_words(subject, peer, slightly, expected):
    assert comparison_word(subject, peer, slightly, WORDS) == expected


def _rec(company, name, metric, value, flags=()):
    return {"company": company, "name": name, "metric": metric, "value": value, "flags": list(flags)}


def test_sentences_state_values_and_leave_out_unreported_peers():
    groups = [SimpleNamespace(id="g", label="Peers", members=["b", "c", "d"])]
    records = [
        _rec("a", "Alpha", "revenue", 1000.0),
        _rec("a", "Alpha", "revenue_yoy", 0.10),
        _rec("a", "Alpha", "selling_expense_ratio", 0.067),
        _rec("b", "Beta", "selling_expense_ratio", 0.091, ["derived_ytd"]),
        _rec("b", "Beta", "revenue_yoy", 0.30),
        _rec("c", "Gamma", "selling_expense_ratio", 0.060, ["sga_proxy"]),
        _rec("d", "Delta", "selling_expense_ratio", None),
    ]
    f = build_findings(records, "a", groups, "2025Q2", BY_ID, 1.0, {}, not_reported=["Delta"], fmt=fmt_value)
    assert f.sentences[0] == "Alpha's revenue was RMB 1,000 million in 2025Q2, up 10.0% year on year."
    assert (
        "Alpha's selling-expense ratio of 6.7% is below Beta 9.1%ᵈ, slightly above Gamma 6.0%ᵃ (Peers)." in f.sentences
    )
    assert not any("n/a" in s for s in f.sentences)  # a move whose level is unknown is not stated
    assert not any("Delta" in s for s in f.sentences)
    assert f.notes[0] == (
        "Delta had not reported 2025Q2 figures when this edition was built and are left out of the comparisons."
    )


def test_workspace_wording_is_used():
    groups = [SimpleNamespace(id="g", label="Peers", members=["b"])]
    records = [_rec("a", "Alpha", "selling_expense_ratio", 0.05), _rec("b", "Beta", "selling_expense_ratio", 0.09)]
    f = build_findings(
        records,
        "a",
        groups,
        "2025Q2",
        BY_ID,
        1.0,
        {"position": "{subject}: {metric} {value}, {comparisons}.", "below": "lower than"},
        fmt=fmt_value,
    )
    assert f.sentences == ["Alpha: selling-expense ratio 5.0%, lower than Beta 9.0% (Peers)."]
