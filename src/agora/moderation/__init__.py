"""Quality filtering: a spam / low-quality classifier, user flags, a review queue and the
feedback of decisions into points, trust (``flag_upheld`` events) and the feed."""
