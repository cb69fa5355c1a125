"""Training: risk, anomaly and recommendation models from the indexed round (issue 5)."""
