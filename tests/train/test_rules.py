"""Association rules: a hand-counted case and equality with a loop over baskets."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qf_sentinel.qf.errors import ConfigError, DataError
from qf_sentinel.qf.train.rules import Rule, top_rules

# Baskets {A,B}, {A,C}, {B,C}, {A} and an empty donor that must not count: N = 4.
MATRIX = sp.csr_array(np.array([[1.0, 2.0, 0.0], [5.0, 0.0, 1.0], [0.0, 1.0, 1.0], [3.0, 0.0, 0.0], [0, 0, 0]]))
IDS = ["A", "B", "C"]


def loop_rules(dense: np.ndarray, ids: list[str], min_count: int) -> list[tuple[str, str, float, float, float, int]]:
    """Every rule counted basket by basket, sorted by lift, support, antecedent, consequent."""
    baskets = [{p for p in range(dense.shape[1]) if dense[i, p] > 0} for i in range(dense.shape[0])]
    baskets = [b for b in baskets if b]
    n = len(baskets)
    rules = []
    for a in range(len(ids)):
        for b in range(len(ids)):
            both = sum(1 for basket in baskets if a in basket and b in basket)
            if a == b or both < min_count:
                continue
            n_a = sum(1 for basket in baskets if a in basket)
            n_b = sum(1 for basket in baskets if b in basket)
            rules.append((a, b, Fraction(both, n), Fraction(both, n_a), Fraction(both * n, n_a * n_b), both))
    rules.sort(key=lambda r: (-r[4], -r[2], r[0], r[1]))  # exact fractions: ties are real ties
    return [(ids[a], ids[b], float(s), float(c), float(lift), both) for a, b, s, c, lift, both in rules]


def test_rules_by_hand() -> None:
    """n(A)=3, n(B)=n(C)=2, every pair shared once: B<->C have lift 1, the pairs with A lift 2/3."""
    rules = top_rules(MATRIX, IDS, min_support_count=1)
    assert [(r.antecedent, r.consequent) for r in rules] == [
        ("B", "C"),
        ("C", "B"),
        ("A", "B"),
        ("A", "C"),
        ("B", "A"),
        ("C", "A"),
    ]
    assert rules[0] == Rule("B", "C", support=0.25, confidence=0.5, lift=1.0, donors=1)
    assert rules[2].confidence == pytest.approx(1 / 3)
    assert rules[2].lift == pytest.approx(2 / 3)
    assert rules[4].confidence == pytest.approx(1 / 2)
    assert rules[4].lift == pytest.approx(2 / 3)


def test_min_support_and_top_cut_the_list() -> None:
    """No pair is shared by two donors; top keeps the best rules only."""
    assert top_rules(MATRIX, IDS, min_support_count=2) == []
    assert len(top_rules(MATRIX, IDS, min_support_count=1, top=2)) == 2


def test_bad_arguments() -> None:
    """Ids must match the projects; counts and lengths must make sense."""
    with pytest.raises(DataError):
        top_rules(MATRIX, ["A", "B"])
    with pytest.raises(ConfigError):
        top_rules(MATRIX, IDS, min_support_count=0)
    with pytest.raises(ConfigError):
        top_rules(MATRIX, IDS, top=-1)


@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 15), st.integers(1, 6)), elements=st.sampled_from([0.0, 0.0, 1.0, 3.0])
    ),
    st.integers(1, 3),
)
def test_sparse_rules_equal_loop_over_baskets(dense: np.ndarray, min_count: int) -> None:
    """The sparse X^T X rules equal counting every basket by hand, in the same order."""
    ids = [f"p{i}" for i in range(dense.shape[1])]
    rules = top_rules(sp.csr_array(dense), ids, min_support_count=min_count, top=1000)
    expected = loop_rules(dense, ids, min_count)
    assert [(r.antecedent, r.consequent, r.donors) for r in rules] == [(a, b, d) for a, b, _, _, _, d in expected]
    for rule, (_, _, support, confidence, lift, _) in zip(rules, expected, strict=True):
        assert rule.support == pytest.approx(support)
        assert rule.confidence == pytest.approx(confidence)
        assert rule.lift == pytest.approx(lift)
