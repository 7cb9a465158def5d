"""The rules that choose the findings' comparisons (basis, definition, word) and the sentences they produce."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from reportgen.findings import DEFAULT_TEMPLATES, View, build_findings, compare, comparison_word, headline
from reportgen.formats import fmt_value
from reportgen.metrics import BY_ID

WORDS = DEFAULT_TEMPLATES
SER = BY_ID["selling_expense_ratio"]
NAMES = {"a": "Alpha", "b": "Beta", "c": "Gamma", "d": "Delta", "e": "Epsilon", "f": "Zeta", "g": "Eta", "h": "Theta"}


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


def _view(basis, period, rows):
    """rows: (company, metric, value, flags)."""
    return View(basis, period, {(c, m): {"value": v, "flags": list(fl)} for c, m, v, fl in rows})


def _groups(*members, label="Peers"):
    return [SimpleNamespace(id="g", label=label, members=list(members))]


QUARTER = _view(
    "quarter",
    "2025Q2",
    [
        ("a", "selling_expense_ratio", 0.067, ()),
        ("a", "sga_ratio", 0.081, ("sga_sum",)),
        ("b", "selling_expense_ratio", 0.091, ("derived_ytd",)),
        ("c", "selling_expense_ratio", None, ("missing",)),  # no single quarter: the first half is compared
        ("d", "selling_expense_ratio", 0.090, ("sga_proxy",)),  # SG&A: compared with the subject's SG&A ratio
        ("d", "sga_ratio", 0.090, ()),
        ("e", "selling_expense_ratio", None, ("missing",)),  # on no basis at all
    ],
)
HALF = _view(
    "ytd",
    "the first half of 2025",
    [
        ("a", "selling_expense_ratio", 0.066, ()),
        ("a", "sga_ratio", 0.080, ("sga_sum",)),
        ("b", "selling_expense_ratio", 0.092, ()),
        ("c", "selling_expense_ratio", 0.064, ()),
        ("d", "selling_expense_ratio", 0.093, ("sga_proxy",)),
        ("d", "sga_ratio", 0.093, ()),
        ("e", "selling_expense_ratio", None, ("missing",)),
    ],
)


def test_each_peer_is_compared_on_the_first_basis_both_have_and_like_for_like():
    comps, gaps = compare([QUARTER, HALF], "a", _groups("b", "c", "d", "e"), SER, 1.0, WORDS, BY_ID)
    got = {c.peer: (c.basis, c.metric, c.word) for c in comps}
    assert got == {
        "b": ("quarter", "selling_expense_ratio", "below"),
        "c": ("ytd", "selling_expense_ratio", "slightly above"),  # 6.6 % against 6.4 %, on the first half
        "d": ("quarter", "sga_ratio", "slightly below"),  # 8.1 % SG&A against 9.0 % SG&A, not 6.7 % against it
    }
    assert gaps == ["e"]
    assert next(c for c in comps if c.peer == "d").gap_pp == pytest.approx(-0.9)


def test_a_proxy_without_a_subject_value_of_that_definition_is_not_compared():
    bare = _view(
        "quarter",
        "2025Q2",
        [(c, m, v, fl) for (c, m), r in QUARTER.by.items() for v, fl in [(r["value"], r["flags"])] if m != "sga_ratio"],
    )
    comps, gaps = compare([bare], "a", _groups("d"), SER, 1.0, WORDS, BY_ID)
    assert comps == [] and gaps == ["d"]  # never a selling ratio against an SG&A ratio


def test_the_group_sentence_names_each_basis_and_each_direction():
    f = build_findings([QUARTER, HALF], "a", NAMES, _groups("b", "c", "d", "e"), BY_ID, 1.0, fmt=fmt_value)
    assert f.sentences[0] == (
        "Peers: in 2025Q2, Alpha's selling-expense ratio of 6.7% is below Beta's 9.1%ᵈ; "
        "its SG&A ratio of 8.1%ᵍ is slightly below Delta's 9.0%; "
        "in the first half of 2025, Alpha's selling-expense ratio of 6.6% is slightly above Gamma's 6.4%."
    )
    assert f.notes[0] == "Selling-expense ratio: no figure for Epsilon on either basis (see the tables for why)."
    # where the subject itself has no figure (no revenue growth in these views), the note names the subject
    assert f.notes[1] == "Revenue growth YoY: no figure for Alpha on either basis (see the tables for why)."


@pytest.mark.parametrize(
    "peers,expected",
    [
        ({"b": 0.09, "c": 0.08, "d": 0.10}, "Alpha's selling-expense ratio, 6.7% in 2025Q2, is below every peer's"),
        (
            {"b": 0.09, "c": 0.06, "d": 0.10},
            "Alpha's selling-expense ratio, 6.7% in 2025Q2, is below every peer's but Gamma's",
        ),
        (
            {"b": 0.05, "c": 0.06, "d": 0.10, "e": 0.04},
            "Alpha's selling-expense ratio, 6.7% in 2025Q2, is above every peer's but Delta's",
        ),
        (
            {"b": 0.05, "c": 0.06, "d": 0.10, "e": 0.04, "f": 0.08, "g": 0.09, "h": 0.07},
            "Alpha's selling-expense ratio, 6.7% in 2025Q2, is below 4 of its 7 peers'",
        ),
        ({}, "Alpha's selling-expense ratio in 2025Q2: no peer to compare with yet"),
    ],
    ids=["all", "all-but-one", "all-but-one-above", "some", "none"],
)
def test_headline_states_the_conclusion_from_the_figures(peers, expected):
    view = _view(
        "quarter",
        "2025Q2",
        [("a", "selling_expense_ratio", 0.067, ())] + [(p, "selling_expense_ratio", v, ()) for p, v in peers.items()],
    )
    comps, _ = compare([view], "a", _groups(*peers), SER, 1.0, WORDS, BY_ID)
    assert headline(comps, "Alpha", NAMES, SER, "2025Q2", WORDS, "6.7%") == expected


def test_unreported_peers_are_left_out_and_said_so():
    f = build_findings(
        [QUARTER, HALF], "a", NAMES, _groups("b", "c", "e"), BY_ID, 1.0, not_reported=["Epsilon"], fmt=fmt_value,
        quarter="2025Q2",
    )  # fmt: skip
    assert not any("Epsilon" in s for s in f.sentences)
    assert f.notes[0] == (
        "Epsilon had not reported 2025Q2 figures when this edition was built and are left out of the comparisons."
    )
    assert not any("Epsilon" in n for n in f.notes[1:])


def test_workspace_wording_is_used():
    f = build_findings(
        [QUARTER],
        "a",
        NAMES,
        _groups("b"),
        BY_ID,
        1.0,
        {"group_sentence": "{group} — {clauses}.", "clause": "{period}: {subject} {value}, {comparisons}",
         "below": "lower than", "peer_value": "{peer} {value}"},
        fmt=fmt_value,
    )  # fmt: skip
    assert f.sentences[0] == "Peers — 2025Q2: Alpha 6.7%, lower than Beta 9.1%ᵈ."


def test_headline_names_peers_in_line_says_like_for_like_and_counts_peers_with_a_figure():
    view = _view(
        "quarter",
        "2025Q2",
        [
            ("a", "selling_expense_ratio", 0.067, ()),
            ("a", "sga_ratio", 0.081, ("sga_sum",)),
            ("b", "selling_expense_ratio", 0.091, ()),
            ("c", "selling_expense_ratio", 0.0672, ()),  # in line: within 0.05 pp
            ("d", "selling_expense_ratio", 0.090, ("sga_proxy",)),
            ("d", "sga_ratio", 0.090, ()),
            ("e", "selling_expense_ratio", None, ("missing",)),
        ],
    )
    f = build_findings([view], "a", NAMES, _groups("b", "c", "d", "e"), BY_ID, 1.0, fmt=fmt_value)
    assert f.headline == (
        "Alpha's selling-expense ratio, 6.7% in 2025Q2, is below every peer's, in line with Gamma's, like for like"
        " (3 of 4 peers have a figure)"
    )
    f = build_findings([view], "a", NAMES, _groups("b", "c", "d", "e"), BY_ID, 1.0, fmt=fmt_value,
                       not_reported=["Epsilon"])  # fmt: skip
    assert f.headline.endswith("like for like")  # a peer that has not reported is said apart, in the notes
