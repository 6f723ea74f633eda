"""The ad market: campaigns, GSP auction with quality and reserve, pacing, frequency caps,
randomised holdouts, and measurement (CTR, CVR, spend, ROI, lift with confidence intervals)."""
