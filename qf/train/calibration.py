"""Risk scores that mean what they say, and thresholds that hold a stated false-block rate.

The models are trained with class weights on a mix of a round's real donors and
injected attacks, so their raw outputs are rankings, not probabilities.
:func:`fit_calibration` fits isotonic regression (monotone, so the ranking and
every ROC figure stay as they are) on *held-out* predictions: each attacker
scored by a model that never saw its family, each background donor by a model
that never saw it. A calibrated 0.7 then means "of the held-out donors scored
about here, 70% were attackers" (in the training mix's proportion of attackers).

:func:`choose_thresholds` then picks the serving thresholds from the held-out
background scores: the block threshold is the higher of the nominal one (0.7)
and the score that at most ``block_rate`` of the background exceeds; the same for
review (``review_rate``, never below a calibrated 5%). Background donors are not assumed honest, so the
rates are upper bounds on what honest donors see.

The serving form is :class:`qf.model.calibration.Calibration`: the isotonic step points, applied with
``np.interp`` (what scikit-learn's ``IsotonicRegression.predict`` does), saved as
``calibration.npz``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from qf_sentinel.qf.errors import DataError
from qf_sentinel.qf.model.calibration import Calibration, FloatArray


def fit_calibration(raw: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Calibration, FloatArray]:
    """Isotonic fit of held-out ``raw`` scores to labels; returns the map and scikit-learn's own predictions."""
    from sklearn.isotonic import IsotonicRegression  # noqa: PLC0415 - training-only dependency

    scores = np.asarray(raw, dtype=np.float64)
    labels = np.asarray(y, dtype=bool)
    if labels.all() or not labels.any():
        raise DataError("calibration needs held-out scores of both attackers and background donors")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels.astype(np.float64))
    calibration = Calibration(x=model.X_thresholds_, y=model.y_thresholds_)
    return calibration, np.asarray(model.predict(scores), dtype=np.float64)


def rate_threshold(scores: npt.ArrayLike, rate: float) -> float:
    """The lowest threshold ``t`` with at most ``rate`` of ``scores`` at or above it (ties count as above)."""
    values = np.sort(np.asarray(scores, dtype=np.float64))
    if values.size == 0:
        return 0.0
    allowed = int(np.floor(rate * values.size))  # this many may be at or above t
    if allowed >= values.size:
        return 0.0
    # Everything above the value at rank n - allowed - 1 may pass; t sits just above that value.
    return float(np.nextafter(values[values.size - allowed - 1], np.inf))


def choose_thresholds(
    background: npt.ArrayLike,
    *,
    block: float,
    review_rate: float,
    block_rate: float,
    review_floor: float = 0.05,
) -> tuple[float, float]:
    """``(review, block)`` from held-out background scores (REVIEW from ``review``, BLOCK above ``block``).

    Block: the nominal ``block`` (a calibrated 0.7), raised until at most
    ``block_rate`` of the background is above it. Review: the review budget is
    spent: the lowest threshold that sends at most ``review_rate`` of the
    background to review or block, but never below ``review_floor`` (a donor
    with a calibrated risk under 5% is not worth a reviewer's time).
    """
    scores = np.asarray(background, dtype=np.float64)
    block_at = max(block, rate_threshold(scores, block_rate))
    review_at = max(review_floor, rate_threshold(scores, review_rate))
    return min(review_at, block_at), min(block_at, 1.0)
