"""Engagement analytics: active users, rates, retention, response times, attention, the report."""
