"""The console's texts: one catalogue per language (``en.py``, ``zh.py``), keyed by the same
names; templates call ``t("key", name=value)``. A key missing in Chinese falls back to
English (a test keeps both catalogues at the same keys)."""

from __future__ import annotations

from collections.abc import Callable

from agora.web.console.i18n import en, zh

LANG_COOKIE = "agora_lang"
DEFAULT = "en"
#: Code -> the language's own name, as the switch shows it.
LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
CATALOGUES: dict[str, dict[str, str]] = {"en": en.TEXTS, "zh": zh.TEXTS}


def language(cookie: str | None) -> str:
    """The language a cookie names, English when absent or unknown."""
    return cookie if cookie in CATALOGUES else DEFAULT


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)``: the text of ``key`` in ``lang`` with ``values`` filled in;
    ``_default`` stands in for a key neither catalogue has (names that come from data)."""
    texts, fallback = CATALOGUES[language(lang)], CATALOGUES[DEFAULT]

    def t(key: str, _default: str | None = None, **values: object) -> str:
        text = texts.get(key) or fallback.get(key, _default)
        if text is None:
            raise KeyError(f"no console text {key!r}")
        return text.format(**values) if values else text

    return t
