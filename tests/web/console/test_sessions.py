"""Console sessions without a browser: the signed cookie, CSRF tokens, the secret's file, the
language catalogues."""

from __future__ import annotations

import stat
import string
from pathlib import Path

import pytest

from agora.config import Settings
from agora.web.console import auth
from agora.web.console.i18n import CATALOGUES, translator

KEY = b"k" * 32


def _settings(tmp_path: Path, **extra) -> Settings:
    return Settings(
        data_dir=tmp_path,
        api_key="admin-secret-key",
        api_keys={"reader-secret-key": ["read"], "metrics-key": ["metrics"]},
        **extra,
    )


def _cookie(settings: Settings, key: str, now: float = 1000.0, hours: float = 1.0) -> str:
    principal = auth.sign_in(settings, key)
    assert principal is not None
    return auth.session_cookie(KEY, principal, hours, now)


def test_a_session_holds_the_key_scopes_as_configured_now_and_never_the_key(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    cookie = _cookie(settings, "reader-secret-key")
    assert "reader-secret-key" not in cookie
    session = auth.read_session(settings, KEY, cookie, 1001.0)
    assert session is not None and session.can("read") and not session.can("write")
    promoted = _settings(tmp_path).model_copy(update={"api_keys": {"reader-secret-key": ["write"]}})
    assert auth.read_session(promoted, KEY, cookie, 1001.0).can("write")
    removed = _settings(tmp_path).model_copy(update={"api_keys": {}})
    assert auth.read_session(removed, KEY, cookie, 1001.0) is None


def test_altered_expired_or_foreign_cookies_are_no_session(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    cookie = _cookie(settings, "admin-secret-key")
    payload, signature = cookie.split(".")
    assert auth.read_session(settings, KEY, cookie, 1001.0) is not None
    assert auth.read_session(settings, KEY, cookie, 1000.0 + 3601) is None  # expired
    assert auth.read_session(settings, b"x" * 32, cookie, 1001.0) is None  # another secret
    assert auth.read_session(settings, KEY, payload[:-2] + "AA." + signature, 1001.0) is None
    for junk in ("", "a.b.c", "nodot", "e30.AAAA"):
        assert auth.read_session(settings, KEY, junk, 1001.0) is None


def test_only_keys_that_can_read_sign_in(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert auth.sign_in(settings, "metrics-key") is None
    assert auth.sign_in(settings, "nobody") is None
    assert auth.sign_in(settings, "  admin-secret-key ").allows("admin")


def test_csrf_tokens_belong_to_one_session() -> None:
    assert auth.csrf_token(KEY, "session-a") == auth.csrf_token(KEY, "session-a")
    assert auth.csrf_token(KEY, "session-a") != auth.csrf_token(KEY, "session-b")
    assert auth.csrf_token(KEY, "session-a") != auth.csrf_token(b"y" * 32, "session-a")


def test_the_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = auth.secret(settings)
    assert len(first) >= 32 and auth.secret(settings) == first
    mode = (tmp_path / auth.SECRET_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    configured = _settings(tmp_path, console_secret="c" * 20)
    assert auth.secret(configured) == b"c" * 20


@pytest.mark.parametrize(
    ("path", "kept"),
    [("/console/users/28", True), ("//evil.example/x", False), ("https://evil.example", False),
     ("/console/\\\\evil", False), (None, False), ("/docs", False)],
)  # fmt: skip
def test_only_console_paths_are_followed_after_sign_in(path: str | None, kept: bool) -> None:
    assert auth.safe_next(path) == (path if kept else "/console/")


def test_both_languages_have_every_text_and_the_same_placeholders() -> None:
    en, zh = CATALOGUES["en"], CATALOGUES["zh"]
    assert set(en) == set(zh)
    placeholders = string.Formatter()
    for key in en:
        names = {f for _, f, _, _ in placeholders.parse(en[key]) if f}
        assert names == {f for _, f, _, _ in placeholders.parse(zh[key]) if f}, key
    assert translator("zh")("nav.overview") == "概览"
    assert translator("fr")("nav.overview") == "Overview"  # unknown language: English
    assert translator("en")("metric.unknown", _default="unknown") == "unknown"
    with pytest.raises(KeyError):
        translator("en")("no.such.text")
