"""Results computed in the background and served from storage: anomalies and influence."""
