"""Sentiment of posts and comments (Chinese and English), with the model shipped in model/."""
