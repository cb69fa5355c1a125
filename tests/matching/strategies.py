"""Hypothesis strategies shared by the matching tests: small contribution matrices."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

# Amounts a round really sees (cents to thousands), and many exact zeros so
# that projects with one donor, donors with one project and empty rows occur.
amounts = st.one_of(st.just(0.0), st.just(0.0), st.floats(min_value=0.01, max_value=1000.0))


@st.composite
def contribution_matrices(draw: st.DrawFn, max_donors: int = 9, max_projects: int = 5) -> np.ndarray:
    """A donors x projects matrix of non-negative float64 amounts."""
    donors = draw(st.integers(min_value=1, max_value=max_donors))
    projects = draw(st.integers(min_value=1, max_value=max_projects))
    return draw(arrays(np.float64, (donors, projects), elements=amounts))
