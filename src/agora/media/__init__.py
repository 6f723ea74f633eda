"""Images of items: fetched from where the item's ``media`` says (a folder, or allowed hosts)
or sent to ``POST /items/{id}/media``, read by :mod:`agora.vision` (facts, text inside,
explicit score) and stored in ``item_media`` (``db/tables.py``: the content models' features
read it too). What they feed: the text of content models and trending keywords, the
moderation classifier's text, a review case for an explicit image, and media features.
"""
