"""Images of items end to end on SQLite and PostgreSQL: named in an item's media and read from
the media folder, or sent to the API; what was read reaches the store, the moderation queue,
the training data and trending keywords; what may not be fetched is not."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from sqlalchemy import select
from vision_support import CHINESE, LATIN, PORTRAIT, text_image

from agora.analytics.trending import service as trending
from agora.api.app import create_app
from agora.config import Settings
from agora.db.engine import transaction
from agora.db.tables import Item, ItemMedia
from agora.features.store import load_training_data
from agora.media import service
from agora.models.content import ContentModel
from agora.moderation import service as moderation
from agora.vision.analyse import ImageAnalysis
from agora.vision.explicit import ExplicitScore
from agora.vision.ocr import ReadText
from agora.vision.probe import ImageInfo

ADMIN = {"Authorization": "Bearer test-admin"}
READ = {"Authorization": "Bearer r"}
WRITE = {"Authorization": "Bearer w"}
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _put(client: TestClient, item_id: str, media: dict, title: str = "A post") -> None:
    body = {"title": title, "body": "see the picture", "created": "2026-11-30T12:00:00Z"}
    answer = client.put(f"/items/{item_id}", json={**body, "media": media}, headers=WRITE)
    assert answer.status_code in (200, 201), answer.text


def _analyse(client: TestClient, settings: Settings) -> service.AnalyseSummary:
    return service.analyse_pending(
        client.app.state.sessions, service.MediaPolicy.of(settings), lambda: NOW
    )


def test_images_named_by_items_are_read_from_the_media_folder(
    client: TestClient, settings: Settings
) -> None:
    root = settings.media_root
    (root / "poster.png").write_bytes(text_image([("Cardano summit Lisbon", LATIN)]))
    (root / "menu.jpg").write_bytes(text_image([("今日特价红烧牛肉面", CHINESE)], fmt="JPEG"))
    _put(client, "p1", {"images": ["poster.png", {"path": "menu.jpg"}]})
    _put(client, "p2", {"image": "../outside.png"})
    _put(client, "p3", {"images": ["https://elsewhere.example/a.png", "missing.png"]})
    summary = _analyse(client, settings)
    assert (summary.analysed, summary.failed) == (2, 3)
    media = client.get("/items/p1/media", headers=READ).json()
    assert [(m["source"], m["text"], m["mime"]) for m in media] == [
        ("poster.png", "Cardano summit Lisbon", "image/png"),
        ("menu.jpg", "今日特价红烧牛肉面", "image/jpeg"),
    ]
    errors = {m["source"]: m["error"] for p in ("p2", "p3")
              for m in client.get(f"/items/{p}/media", headers=READ).json()}  # fmt: skip
    assert errors == {
        "../outside.png": "the path leads outside media_root",
        "https://elsewhere.example/a.png": "host 'elsewhere.example' is not in "
        "media_fetch_hosts, so it is not fetched",
        "missing.png": "no such file under media_root",
    }
    # nothing is read twice; an item that stops naming an image loses its reading
    assert _analyse(client, settings).analysed == 0
    _put(client, "p1", {"images": ["menu.jpg"]})
    _put(client, "p2", {})
    _analyse(client, settings)
    assert client.get("/items/p2/media", headers=READ).json() == []
    assert [m["source"] for m in client.get("/items/p1/media", headers=READ).json()] == ["menu.jpg"]


def test_an_image_sent_to_the_api_is_read_and_answered(client: TestClient) -> None:
    _put(client, "q1", {})
    data = text_image([("Wallet sync stuck", LATIN)])
    sent = client.post(
        "/items/q1/media", content=data, headers={**WRITE, "Content-Type": "image/png"}
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["text"] == "Wallet sync stuck" and body["in_review"] is False
    assert body["source"].startswith("upload:") and body["bytes"] == len(data)
    assert len(client.get("/items/q1/media", headers=READ).json()) == 1


def test_the_media_route_refuses_what_it_cannot_read_and_says_why(client: TestClient) -> None:
    _put(client, "q2", {})
    png = {**WRITE, "Content-Type": "image/png"}
    assert client.post("/items/q2/media", content=b"x", headers=READ).status_code == 403
    not_image = client.post("/items/q2/media", content=b"{}", headers=WRITE)
    assert not_image.status_code == 415 and "Content-Type image/" in not_image.json()["detail"]
    garbage = client.post("/items/q2/media", content=b"GIF89a but not really", headers=png)
    assert garbage.status_code == 422
    assert "not a readable image" in garbage.json()["problems"][0]["message"]
    missing = client.post("/items/nope/media", content=PORTRAIT.read_bytes(), headers=png)
    assert missing.status_code == 404
    assert client.get("/items/nope/media", headers=READ).status_code == 404
    assert client.get("/items/q2/media").status_code == 401


def test_an_explicit_image_opens_a_review_case_by_itself(client: TestClient) -> None:
    """The detector's answer on an explicit image is written as the detector gives it (no such
    image ships with the tests); the queue and its priority are the real ones."""
    _put(client, "r1", {})
    _put(client, "r2", {})
    explicit = ImageAnalysis(
        "0" * 64,
        ImageInfo("image/jpeg", 640, 480, 50_000, 1, None),
        ReadText("", None, 0),
        ExplicitScore(0.83, {"FEMALE_BREAST_EXPOSED": 0.83, "FACE_FEMALE": 0.7}),
        0.1,
    )
    policy = service.MediaPolicy(explicit_threshold=0.5)
    with transaction(client.app.state.sessions) as session:
        ids = dict(session.execute(select(Item.external_id, Item.id)).all())
        _, queued = service.add_reading(session, ids["r1"], "upload:x", explicit, policy, NOW)
        assert queued
        calm = ImageAnalysis("1" * 64, explicit.info, explicit.text, ExplicitScore(0.2), 0.1)
        assert not service.add_reading(session, ids["r2"], "upload:y", calm, policy, NOW)[1]
    queue = client.get("/moderation/queue", headers=ADMIN).json()
    assert [(c["item_id"], c["image_score"], c["priority"]) for c in queue] == [("r1", 0.83, 0.83)]
    assert queue[0]["image_parts"]["FEMALE_BREAST_EXPOSED"] == 0.83
    # a user's flag on top: 1 - (1 - 0.83) * 0.5
    flag = client.post(
        "/items/r1/flags", json={"user_id": "u1", "reason": "offensive"}, headers=WRITE
    )
    assert abs(flag.json()["priority"] - 0.915) < 1e-9


def test_text_read_in_images_reaches_models_moderation_and_trending(
    client: TestClient, settings: Settings
) -> None:
    (settings.media_root / "flyer.png").write_bytes(text_image([("Hydra testnet launch", LATIN)]))
    _put(client, "t1", {"images": ["flyer.png"], "video": {"duration": 700, "bytes": 9e6}})
    _put(client, "t2", {})
    _put(client, "t3", {"images": ["https://elsewhere.example/x.png", "y.png"]})  # unread
    _analyse(client, settings)
    with client.app.state.sessions() as session:
        interactions, side, _ = load_training_data(session, settings.event_weights)
        posts = moderation.posts_for(session, list(session.scalars(select(ItemMedia.item_id))))
        series = trending.store_series(session, NOW, "day", 3, source="keywords")
    row = list(interactions.item_ids).index("t1")
    assert side.texts[row].endswith("Hydra testnet launch")
    assert side.media[row] == [
        "media:image", "media:image:small", "media:text-in-image", "media:video",
        "media:video:long",
    ]  # fmt: skip
    assert side.media[list(interactions.item_ids).index("t2")] == []
    assert side.media[list(interactions.item_ids).index("t3")] == ["media:image", "media:gallery"]
    assert "hydra" in ContentModel.documents(side, len(side.texts))[row]
    assert "Hydra testnet launch" in next(iter(posts.values())).text
    assert "hydra" in series.keys and "testnet" in series.keys


def test_images_on_an_allowed_host_are_fetched_over_http(tmp_path, database_url) -> None:
    """A real HTTP server on 127.0.0.1 serves the images; only its host is allowed."""
    import functools
    import http.server
    import threading

    served = tmp_path / "site"
    served.mkdir()
    (served / "banner.png").write_bytes(text_image([("Node operators call", LATIN)]))
    (served / "huge.png").write_bytes(b"\x89PNG" + b"\0" * 50_000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            api_keys={"w": ["write", "read"]},
            media_fetch_hosts=["127.0.0.1"],
            media_max_bytes=30_000,
            background_seconds=3600,
        )
        with TestClient(create_app(settings)) as client:
            urls = [f"{base}/banner.png", f"{base}/missing.png", f"{base}/huge.png"]
            _put(client, "h1", {"images": urls})
            summary = _analyse(client, settings)
            media = {m["source"]: m for m in client.get("/items/h1/media", headers=WRITE).json()}
    finally:
        server.shutdown()
    assert (summary.analysed, summary.failed) == (1, 2)
    assert media[urls[0]]["text"] == "Node operators call"
    assert media[urls[1]]["error"] == "the server answered 404"
    assert media[urls[2]]["error"] == "larger than media_max_bytes (30,000)"
