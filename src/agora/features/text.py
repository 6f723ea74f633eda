"""Tokenisation for mixed Chinese / English community text.

Latin-script runs become lowercase word tokens (English stop words dropped); runs of CJK
characters are segmented with ``jieba`` so a Chinese post and a Chinese query share tokens.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

# CJK Unified Ideographs (+ extension A, compatibility ideographs)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"([{_CJK}]+)|([a-z0-9]+(?:'[a-z]+)?)")

#: Very common Chinese function words that carry no topic.
CHINESE_STOP_WORDS = frozenset("的了是在和与及就都而也我你他她它们这那个之吗呢吧啊有被把给让")


@lru_cache(maxsize=1)
def _english_stop_words() -> frozenset[str]:
    """scikit-learn's English stop words, imported on first use: importing scikit-learn takes
    about a second, which every command and server start paid for one word list."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


@lru_cache(maxsize=1)
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def tokenize(text: str | None) -> list[str]:
    """Lowercase English words (no stop words, no 1-letter tokens) and jieba words for CJK runs."""
    if not text:
        return []
    tokens: list[str] = []
    english_stop_words = _english_stop_words()
    for cjk, word in _RUN.findall(text.lower()):
        if cjk:
            for tok in _jieba().lcut(cjk):
                tok = tok.strip()
                if tok and tok not in CHINESE_STOP_WORDS:
                    tokens.append(tok)
        elif len(word) > 1 and word not in english_stop_words:
            tokens.append(word)
    return tokens


def tag_tokens(tags: list[str] | None) -> list[str]:
    """Tags as their own vocabulary: ``#`` + lowercased, whitespace-collapsed tag."""
    if not tags:
        return []
    out = []
    for tag in tags:
        norm = " ".join(str(tag).lower().split())
        if norm:
            out.append("#" + norm)
    return out
