"""Users, items, edges, groups over HTTP; the latest list, the home page, OpenAPI, limits."""

from __future__ import annotations

from api_support import ADMIN, READ, WRITE, counts, event
from fastapi.testclient import TestClient


def test_user_crud(client: TestClient) -> None:
    created = client.put(
        "/users/alice",
        json={"created": "2024-01-02T03:04:05+01:00", "attributes": {"lang": "en"}},
        headers=WRITE,
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "user_id": "alice",
        "created": "2024-01-02T02:04:05Z",
        "attributes": {"lang": "en"},
        "n_events": 0,
    }
    replaced = client.put(
        "/users/alice", json={"user_id": "alice", "attributes": {"lang": "de"}}, headers=WRITE
    )
    assert replaced.status_code == 200 and replaced.json()["attributes"] == {"lang": "de"}
    assert client.get("/users/alice", headers=READ).json()["attributes"] == {"lang": "de"}

    mismatch = client.put("/users/alice", json={"user_id": "bob"}, headers=WRITE)
    assert mismatch.status_code == 422
    assert mismatch.json()["problems"][0]["location"] == "body.user_id"
    assert client.get("/users/bob", headers=READ).status_code == 404

    assert client.delete("/users/alice", headers=ADMIN).status_code == 204
    assert client.get("/users/alice", headers=READ).status_code == 404
    assert client.delete("/users/alice", headers=ADMIN).status_code == 404


def test_deleting_a_user_removes_their_events_not_their_items(client: TestClient) -> None:
    client.put("/items/post1", json={"author_id": "carol", "title": "Hello"}, headers=WRITE)
    client.post("/events", json=[event(1, user="carol"), event(2, user="dave")], headers=WRITE)
    assert counts(client)["events"] == 2
    assert client.delete("/users/carol", headers=ADMIN).status_code == 204
    assert counts(client)["events"] == 1
    item = client.get("/items/post1", headers=READ).json()
    assert item["title"] == "Hello" and item["author_id"] is None
    # re-sending the deleted user's event stores it again (it is gone, not a duplicate)
    assert (
        client.post("/events", json=event(1, user="carol"), headers=WRITE).json()["accepted"] == 1
    )


def test_item_crud(client: TestClient) -> None:
    body = {"author_id": 5, "title": "Staking 101", "tags": ["staking"], "language": "en"}
    created = client.put("/items/q1", json=body, headers=WRITE)
    assert created.status_code == 201, created.text
    got = client.get("/items/q1", headers=READ).json()
    assert got["author_id"] == "5" and got["tags"] == ["staking"] and got["created"].endswith("Z")
    assert client.get("/users/5", headers=READ).status_code == 200  # author created on the fly
    assert client.put("/items/q1", json={"title": "v2"}, headers=WRITE).status_code == 200
    assert client.get("/items/q1", headers=READ).json()["title"] == "v2"
    bad = client.put("/items/q1", json={"tags": "staking"}, headers=WRITE)
    assert bad.status_code == 422 and bad.json()["problems"][0]["location"] == "body.tags"
    client.post("/events", json=event(1, item="q1"), headers=WRITE)
    assert client.delete("/items/q1", headers=ADMIN).status_code == 204
    assert client.get("/items/q1", headers=READ).status_code == 404
    assert counts(client)["events"] == 0
    assert client.delete("/items/q1", headers=ADMIN).status_code == 404


def test_edges(sqlite_client: TestClient) -> None:
    c = sqlite_client
    one = c.post(
        "/edges", json={"source_id": "a", "target_id": "b", "type": "follow"}, headers=WRITE
    )
    assert one.status_code == 200 and one.json() == {"written": 1}
    many = c.post(
        "/edges",
        json=[
            {"source_id": "a", "target_id": "c", "type": "friend"},
            {"source_id": "a", "target_id": "d", "type": "trust", "weight": 0.5},
        ],
        headers=WRITE,
    )
    assert many.json() == {"written": 3}  # a friend edge is stored both ways
    edges = c.get("/users/a/edges", headers=READ).json()
    assert {(e["target_id"], e["type"]) for e in edges} == {
        ("b", "follow"),
        ("c", "friend"),
        ("d", "trust"),
    }
    assert c.get("/users/nobody/edges", headers=READ).status_code == 404

    bad = c.post(
        "/edges",
        json=[
            {"source_id": "a", "target_id": "e", "type": "follow"},
            {"source_id": "a", "target_id": "a", "type": "adores"},
        ],
        headers=WRITE,
    )
    assert bad.status_code == 422
    assert {p["location"] for p in bad.json()["problems"]} == {"body.1.type", "body.1.target_id"}
    assert c.get("/users/e", headers=READ).status_code == 404  # nothing stored
    boolean = c.post(  # JSON false is not a number (found by schemathesis, ST201)
        "/edges",
        json={"source_id": "a", "target_id": "f", "type": "follow", "weight": False},
        headers=WRITE,
    )
    assert boolean.status_code == 422
    assert [p["location"] for p in boolean.json()["problems"]] == ["body.weight"]

    by_query = c.delete("/edges?source_id=a&target_id=b&type=follow", headers=WRITE)
    assert by_query.status_code == 204
    by_body = c.request(
        "DELETE", "/edges", json={"source": "a", "target": "c", "type": "friend"}, headers=WRITE
    )
    assert by_body.status_code == 204
    assert [e["target_id"] for e in c.get("/users/a/edges", headers=READ).json()] == ["d"]
    assert c.get("/users/c/edges", headers=READ).json() == []
    assert c.delete("/edges?source_id=a&target_id=b&type=follow", headers=WRITE).status_code == 404
    missing = c.delete("/edges?source_id=a", headers=WRITE)
    assert missing.status_code == 422
    assert {p["location"] for p in missing.json()["problems"]} == {"query.target_id", "query.type"}


def test_groups_and_members(sqlite_client: TestClient) -> None:
    c = sqlite_client
    group = c.put("/groups/devs", json={"name": "Developers"}, headers=WRITE)
    assert group.status_code == 200 and group.json()["name"] == "Developers"
    one = c.post("/groups/devs/members", json={"user_id": "u1", "role": "admin"}, headers=WRITE)
    assert one.status_code == 200 and one.json() == {"written": 1}
    many = c.post("/groups/devs/members", json=[{"user_id": "u2"}, {"user_id": 3}], headers=WRITE)
    assert many.json() == {"written": 2}
    assert counts(c)["memberships"] == 3
    unknown = c.post("/groups/nope/members", json={"user_id": "u1"}, headers=WRITE)
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    other = c.post(
        "/groups/devs/members", json=[{"user_id": "u4", "group_id": "ops"}], headers=WRITE
    )
    assert other.status_code == 422
    assert other.json()["problems"][0]["location"] == "body.0.group_id"
    assert counts(c)["memberships"] == 3


def test_unknown_ids_on_reads_are_404(sqlite_client: TestClient) -> None:
    for path in ["/users/ghost", "/items/ghost", "/users/ghost/edges"]:
        answer = sqlite_client.get(path, headers=READ)
        assert answer.status_code == 404 and "ghost" in answer.json()["detail"]


def test_latest_shows_a_new_post_at_once_and_is_not_an_item_id(sqlite_client: TestClient) -> None:
    c = sqlite_client
    c.put("/items/old", json={"title": "Old", "created": "2020-01-01T00:00:00Z"}, headers=WRITE)
    c.put("/items/mid", json={"title": "Mid", "created": "2022-01-01T00:00:00Z"}, headers=WRITE)
    first = c.get("/items/latest?n=5", headers=READ)
    assert first.status_code == 200
    assert [i["item_id"] for i in first.json()["items"]] == ["mid", "old"]
    c.put("/items/new", json={"title": "New", "tags": ["x"]}, headers=WRITE)
    latest = c.get("/items/latest?n=2", headers=READ).json()
    assert [i["item_id"] for i in latest["items"]] == ["new", "mid"]
    assert latest["items"][0]["model"] == "latest" and latest["items"][0]["tags"] == ["x"]
    # /items/trending is the trending list (not yet trained here), not an item called "trending"
    trending = c.get("/items/trending", headers=READ)
    assert trending.status_code == 503 and "agora train" in trending.json()["detail"]


def test_n_is_validated(sqlite_client: TestClient) -> None:
    for n in ["0", "1001", "-3", "ten", "1e3"]:
        answer = sqlite_client.get(f"/items/latest?n={n}", headers=READ)
        assert answer.status_code == 422, n
        assert answer.json()["problems"][0]["location"] == "query.n"
    assert sqlite_client.get("/items/latest?n=1000", headers=READ).status_code == 200


def test_raw_body_cap_is_413(sqlite_client: TestClient) -> None:
    padding = "x" * (11 * 1024 * 1024)
    answer = sqlite_client.put("/items/big", json={"body": padding}, headers=WRITE)
    assert answer.status_code == 413 and "10 MB" in answer.json()["detail"]

    def chunks():  # no Content-Length: the cap applies while the body streams in
        yield b'{"body": "'
        for _ in range(11):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    streamed = sqlite_client.put("/items/big", content=chunks(), headers=WRITE)
    assert streamed.status_code == 413 and "10 MB" in streamed.json()["detail"]
    assert sqlite_client.get("/items/big", headers=READ).status_code == 404


def test_home_page_docs_and_openapi(sqlite_client: TestClient) -> None:
    c = sqlite_client
    c.post("/events", json=[event(1), event(2, user="u2")], headers=WRITE)
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for needle in ["/docs", "/health", "/items/trending", "/items/latest", "Bearer", "agora train"]:
        assert needle in text
    assert '<th>users</th><td class="num">2</td>' in text.replace("\n", "").replace("  ", "")
    assert c.get("/docs").status_code == 200
    spec = c.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    events = spec["paths"]["/events"]["post"]
    assert events["security"] == [{"ApiKey": []}]
    assert "requestBody" in events
    assert "/items/trending" in spec["paths"] and "/health" in spec["paths"]


def test_home_page_links_only_what_a_browser_can_open(sqlite_client: TestClient) -> None:
    """Every link on the home page opens without a key; keyed JSON routes are shown as needing
    one, with a curl line carrying the server's own address."""
    from html.parser import HTMLParser

    class Links(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.hrefs: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.hrefs += [value for name, value in attrs if tag == "a" and name == "href"]

    page = sqlite_client.get("/")
    parser = Links()
    parser.feed(page.text)
    assert {"/docs", "/redoc", "/health"} <= set(parser.hrefs), parser.hrefs
    for href in parser.hrefs:
        opened = sqlite_client.get(href)
        assert opened.status_code == 200, (href, opened.status_code)
    text = " ".join(page.text.split())
    for path in ("/items/trending", "/items/latest"):
        assert f'curl -H "Authorization: Bearer $AGORA_API_KEY" http://testserver{path}' in text
    assert "needs key" in text
