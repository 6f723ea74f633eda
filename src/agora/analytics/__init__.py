"""Analytics over the store and its text: sentiment, influence, trending."""
