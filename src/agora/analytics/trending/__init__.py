"""Trending topics (bursts of tags or keywords) and opinion alerts."""
