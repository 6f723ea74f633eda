"""/docs and /redoc come whole from the app: every script, style and icon they load is served by
Agora itself, so the pages work on a machine without internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agora.api.app import create_app
from agora.config import Settings


class _Assets(HTMLParser):
    """The URLs a page loads: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.fixture
def client(tmp_path: Path, sqlite_url: str) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url, api_key="k")
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_and_every_asset_it_loads_come_from_the_app(client: TestClient, page: str):
    answer = client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.I), html
    parser = _Assets()
    parser.feed(html)
    assert len(parser.urls) >= 2, html  # the script and the icon (Swagger UI: its css too)
    for url in parser.urls:
        assert url.startswith("/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    scripts = [u for u in parser.urls if u.endswith(".js")]
    assert scripts and all(
        client.get(u).headers["content-type"].find("javascript") >= 0 for u in scripts
    )
    # the page's data comes from the app as well
    assert client.get("/openapi.json").status_code == 200


def test_vendored_assets_ship_with_their_licences():
    static = Path(create_app.__globals__["__file__"]).parents[1] / "web" / "static"
    for folder in ("swagger-ui", "redoc"):
        assert (static / folder / "LICENSE").is_file()
    assert "Apache License" in (static / "swagger-ui" / "LICENSE").read_text()
    assert "MIT" in (static / "redoc" / "LICENSE").read_text()


def test_home_page_links_to_the_offline_docs(client: TestClient):
    home = client.get("/").text
    for link in re.findall(r'href="(/[^"]*)"', home):
        if link in ("/docs", "/redoc", "/openapi.json") or link.startswith("/static/"):
            assert client.get(link).status_code == 200, link
    assert 'href="/docs"' in home
