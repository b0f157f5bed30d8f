"""``ivs sync`` against Change Discovery streams served on loopback, counting every request at the server."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from iiif_visual_search.catalogue import Catalogue, manifest_id_for
from iiif_visual_search.cli import main
from iiif_visual_search.config import Settings
from iiif_visual_search.discovery.documents import Activity
from iiif_visual_search.discovery.state import Applied
from iiif_visual_search.discovery.walk import already_applied

ALTO_PROFILE = "http://www.loc.gov/standards/alto/"
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def when(minute: int) -> str:
    return (T0 + dt.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def alto(book: int, page: int) -> bytes:
    """One picture per page, placed by book and page so that every region id differs."""
    x, y = 100 + 10 * book, 200 + 10 * page
    return (
        '<?xml version="1.0" encoding="UTF-8"?><alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">'
        "<Description><MeasurementUnit>pixel</MeasurementUnit></Description><Layout>"
        "<Page ID='p' WIDTH='1000' HEIGHT='1500'><PrintSpace>"
        f'<Illustration ID="ill{page}" HPOS="{x}" VPOS="{y}" WIDTH="400" HEIGHT="300"/>'
        "</PrintSpace></Page></Layout></alto>"
    ).encode()


def scan(book: int, page: int) -> bytes:
    """A page scan with a pattern of its own, so that every region image differs."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (500, 750), "white")
    draw = ImageDraw.Draw(image)
    for k in range(12):
        x, y = (37 * k * (book + 2) + 11 * page) % 450, (53 * k + 29 * book + 17 * page) % 700
        draw.rectangle((x, y, x + 30 + 3 * k, y + 20 + 2 * page), fill=(20 * k % 255, 90 * book % 255, 40 * page % 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


class Publisher:
    """Another institution's server: manifests, ALTO and a Change Discovery stream, from memory.

    ``calls`` counts requests per path; a path that is not in ``files`` answers 404."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.calls: Counter[str] = Counter()
        publisher = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                publisher.calls[self.path] += 1
                body, ctype = publisher.files.get(self.path, (b"", ""))
                self.send_response(200 if ctype else 404)
                self.send_header("Content-Type", ctype or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, doc: Any) -> str:
        self.files[path] = (json.dumps(doc).encode(), "application/ld+json")
        return self.url(path)

    def book(self, n: int, pages: int = 3, without: tuple[int, ...] = (), images: bool = False) -> str:
        """``/m/N.json``, a v3 manifest whose canvases link their ALTO through seeAlso (and, with ``images``,
        paint a plain JPEG at half the canvas size)."""
        canvases = []
        for p in range(pages):
            self.files[f"/alto/{n}-{p}.xml"] = (alto(n, p), "application/xml")
            if p in without:
                continue
            canvas = {"id": self.url(f"/m/{n}/canvas/{p}"), "type": "Canvas", "width": 1000, "height": 1500,
                      "items": [], "seeAlso": [{"id": self.url(f"/alto/{n}-{p}.xml"), "type": "Dataset",
                                                "format": "application/xml", "profile": ALTO_PROFILE}]}
            if images:
                self.files[f"/img/{n}-{p}.jpg"] = (scan(n, p), "image/jpeg")
                canvas["items"] = [{"id": f"{canvas['id']}/page", "type": "AnnotationPage", "items": [{
                    "id": f"{canvas['id']}/painting", "type": "Annotation", "motivation": "painting",
                    "target": canvas["id"], "body": {"id": self.url(f"/img/{n}-{p}.jpg"), "type": "Image",
                                                     "format": "image/jpeg", "width": 500, "height": 750}}]}]
            canvases.append(canvas)
        return self.put(f"/m/{n}.json", {"@context": "http://iiif.io/api/presentation/3/context.json",
                                         "id": self.url(f"/m/{n}.json"), "type": "Manifest",
                                         "label": {"en": [f"Book {n}"]}, "items": canvases})

    def stream(self, pages: list[list[dict[str, Any]]], *, prev_of_first: int | None = None) -> str:
        """``/stream.json`` and its pages ``/page/1.json`` … (oldest first), linked by prev and next."""
        stream = self.url("/stream.json")
        for n, items in enumerate(pages, start=1):
            page: dict[str, Any] = {"@context": "http://iiif.io/api/discovery/1/context.json",
                                    "id": self.url(f"/page/{n}.json"), "type": "OrderedCollectionPage",
                                    "partOf": {"id": stream, "type": "OrderedCollection"}, "orderedItems": items}
            prev = n - 1 if n > 1 else prev_of_first
            if prev:
                page["prev"] = {"id": self.url(f"/page/{prev}.json"), "type": "OrderedCollectionPage"}
            if n < len(pages):
                page["next"] = {"id": self.url(f"/page/{n + 1}.json"), "type": "OrderedCollectionPage"}
            self.put(f"/page/{n}.json", page)
        return self.put("/stream.json", {
            "@context": "http://iiif.io/api/discovery/1/context.json", "id": stream, "type": "OrderedCollection",
            "totalItems": sum(map(len, pages)),
            "first": {"id": self.url("/page/1.json"), "type": "OrderedCollectionPage"},
            "last": {"id": self.url(f"/page/{len(pages)}.json"), "type": "OrderedCollectionPage"}})

    def manifest_calls(self) -> Counter[str]:
        return Counter({p: n for p, n in self.calls.items() if p.startswith("/m/")})


def act(kind: str, url: str, minute: int, object_type: str = "Manifest", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "object": {"id": url, "type": object_type}, "endTime": when(minute), **extra}


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    p = Publisher()
    yield p
    p.server.shutdown()
    p.server.server_close()


def ivs(data: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--data-dir", str(data), *args], catch_exceptions=False)


def manifests(data: Path) -> dict[str, str]:
    """Manifest URI → status."""
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        return {m["uri"]: m["status"] for m in catalogue.manifests(include_deleted=True)}


def live_regions(data: Path) -> dict[str, tuple[str, int, int, int, int]]:
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        return {r["id"]: (r["canvas_uri"], r["x"], r["y"], r["w"], r["h"]) for r in catalogue.regions()}


def test_second_run_applies_exactly_the_update_and_the_delete(publisher: Publisher, tmp_path: Path) -> None:
    books = [publisher.book(n) for n in range(6)]
    pages = [[act("Create", books[2 * p], 2 * p), act("Create", books[2 * p + 1], 2 * p + 1)] for p in range(3)]
    stream = publisher.stream(pages)
    data = tmp_path / "data"
    Catalogue(data / "catalogue.sqlite").close()  # a catalogue from before 'ivs sync': the tables come with it

    first = ivs(data, "sync", "-q", stream)
    assert first.exit_code == 0, first.output
    assert manifests(data) == dict.fromkeys(books, "ok")
    assert publisher.manifest_calls() == Counter({f"/m/{n}.json": 1 for n in range(6)})
    before = live_regions(data)
    assert len(before) == 18

    # Book 2 loses its last page, book 4 is withdrawn: a new page of the stream says so.
    publisher.book(2, without=(2,))
    publisher.stream(pages + [[act("Update", books[2], 10), act("Delete", books[4], 11)]])
    publisher.calls.clear()
    second = ivs(data, "sync", "-q", stream)
    assert second.exit_code == 0, second.output

    # Only the stream, the new page and the page before it (to find the first activity already applied).
    assert {p: n for p, n in publisher.calls.items() if not p.startswith("/alto/")} == {
        "/stream.json": 1, "/page/4.json": 1, "/page/3.json": 1, "/m/2.json": 1}
    assert {p for p in publisher.calls if p.startswith("/alto/")} == {"/alto/2-0.xml", "/alto/2-1.xml"}
    assert manifests(data) == {**dict.fromkeys(books, "ok"), books[4]: "deleted"}
    after = live_regions(data)
    gone = {rid for rid, r in before.items() if r[0] == publisher.url("/m/2/canvas/2") or "/m/4/" in r[0]}
    assert len(gone) == 4 and set(after) == set(before) - gone

    # The delete reaches our own change log, and so /activity.
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        kinds = [(r["kind"], r["object_id"]) for r in catalogue.query(
            "SELECT kind, object_id FROM change WHERE object_type='manifest' ORDER BY seq")]
    assert sorted(kinds[-2:]) == [("delete", manifest_id_for(books[4])), ("update", manifest_id_for(books[2]))]

    status = json.loads(ivs(data, "sync", "--status", "--json").output)
    assert status == [{
        "url": stream, "id": stream, "newest_activity": when(11), "read_through_to": when(11),
        "last_run": status[0]["last_run"], "pages_last_run": 2, "activities_last_run": 4, "problem": "",
        "objects": {"present": 5, "removed": 1, "failed": 0, "ignored": 0}}]

    # Nothing new: the stream and its last page, and nothing else.
    publisher.calls.clear()
    third = ivs(data, "sync", "-q")  # no URL: every stream followed before
    assert third.exit_code == 0 and "0 ingested" in third.output
    assert publisher.calls == Counter({"/stream.json": 1, "/page/4.json": 1})


def test_fetch_and_embed_follow_what_changed(publisher: Publisher, tmp_path: Path) -> None:
    books = [publisher.book(n, pages=2, images=True) for n in range(2)]
    pages = [[act("Create", b, n) for n, b in enumerate(books)]]
    stream = publisher.stream(pages)
    data = tmp_path / "data"

    def counts() -> tuple[int, dict[str, int]]:
        with Catalogue(data / "catalogue.sqlite") as catalogue:
            images = catalogue.query_one("SELECT COUNT(*) FROM region_image")[0]
            vectors = {r[0]: r[1] for r in catalogue.query("SELECT model, COUNT(*) FROM embedding GROUP BY model")}
        return images, vectors

    assert ivs(data, "sync", "-q", "--embed", "fingerprint", stream).exit_code == 0
    assert counts() == (4, {"fingerprint": 4})
    publisher.calls.clear()
    assert ivs(data, "sync", "-q", "--embed", "fingerprint", stream).exit_code == 0
    assert not any(p.startswith("/img/") for p in publisher.calls)

    publisher.book(1, pages=3, images=True)  # a page more
    publisher.stream(pages + [[act("Update", books[1], 5)]])
    publisher.calls.clear()
    assert ivs(data, "sync", "-q", "--fetch", "--embed", "fingerprint", stream).exit_code == 0
    assert counts() == (5, {"fingerprint": 5})
    assert [p for p in publisher.calls if p.startswith("/img/")] == ["/img/1-2.jpg"]


def test_a_delete_reaches_our_own_activity_stream(publisher: Publisher, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from iiif_visual_search.web.app import create_app
    from iiif_visual_search.web.options import ServeOptions

    books = [publisher.book(n, pages=1) for n in range(2)]
    stream = publisher.stream([[act("Create", books[0], 0), act("Create", books[1], 1), act("Delete", books[1], 2)]])
    data = tmp_path / "data"
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    # Its newest activity is a Delete: the manifest is never even asked for.
    assert publisher.manifest_calls() == Counter({"/m/0.json": 1})
    ivs(data, "ingest", "-q", books[1])  # known here before the stream deletes it
    publisher.stream([[act("Create", books[0], 0), act("Create", books[1], 1), act("Delete", books[1], 2)],
                      [act("Delete", books[1], 3)]])
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    settings = Settings(data_dir=data, base_url="http://ivs.test")
    with TestClient(create_app(settings, ServeOptions(activity_page_size=1000))) as client:
        last = client.get(client.get("/activity").json()["last"]["id"]).json()
    deletes = [a["object"]["id"] for a in last["orderedItems"] if a["type"] == "Delete"
               and a["object"]["type"] == "Manifest"]
    assert deletes == [f"http://ivs.test/iiif/{manifest_id_for(books[1])}/manifest"]


@pytest.mark.parametrize("breakage", ["missing", "not json"])
def test_a_broken_page_is_quarantined_and_read_by_the_next_run(publisher: Publisher, tmp_path: Path,
                                                               breakage: str) -> None:
    books = [publisher.book(n, pages=1) for n in range(6)]
    stream = publisher.stream([[act("Create", books[2 * p], 2 * p), act("Create", books[2 * p + 1], 2 * p + 1)]
                               for p in range(3)])
    good_page = publisher.files["/page/2.json"]
    if breakage == "missing":
        del publisher.files["/page/2.json"]
    else:
        publisher.files["/page/2.json"] = (b'{"type": "OrderedCollectionPage", "orderedI', "application/json")
    del publisher.files["/m/5.json"]  # and one manifest is down
    data = tmp_path / "data"

    first = ivs(data, "sync", "-q", stream)
    assert first.exit_code != 0 and "not read through" in first.output
    assert manifests(data) == {books[4]: "ok"}
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        quarantined = {(r["kind"], r["ref"]): r["reason"] for r in catalogue.quarantined()}
    assert set(quarantined) == {("stream-page", publisher.url("/page/2.json")), ("manifest", books[5])}
    assert ("404" if breakage == "missing" else "not JSON") in quarantined["stream-page", publisher.url("/page/2.json")]
    status = json.loads(ivs(data, "sync", "--status", "--json").output)[0]
    assert status["read_through_to"] is None and "/page/2.json" in status["problem"]
    assert status["objects"] == {"present": 1, "removed": 0, "failed": 1, "ignored": 0}

    publisher.files["/page/2.json"] = good_page
    publisher.book(5, pages=1)
    second = ivs(data, "sync", "-q", stream)
    assert second.exit_code == 0, second.output
    assert manifests(data) == dict.fromkeys(books, "ok")
    # Over both runs every manifest was asked for once, the one that was down twice.
    assert publisher.manifest_calls() == Counter({**{f"/m/{n}.json": 1 for n in range(5)}, "/m/5.json": 2})
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        assert catalogue.quarantined() == []


def test_a_loop_in_prev_ends_the_walk_and_is_reported(publisher: Publisher, tmp_path: Path) -> None:
    books = [publisher.book(n, pages=1) for n in range(3)]
    stream = publisher.stream([[act("Create", b, n)] for n, b in enumerate(books)], prev_of_first=3)
    data = tmp_path / "data"
    result = ivs(data, "sync", "-q", stream)
    assert result.exit_code != 0
    assert manifests(data) == dict.fromkeys(books, "ok")
    assert publisher.calls["/page/3.json"] == 1 and publisher.calls["/page/1.json"] == 1
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        (row,) = catalogue.quarantined("stream-page")
    assert row["ref"] == publisher.url("/page/3.json") and "loop" in row["reason"]
    # The loop is still there: the next run reports it again, and asks for no manifest again.
    again = ivs(data, "sync", "-q", stream)
    assert again.exit_code != 0
    assert publisher.manifest_calls() == Counter({f"/m/{n}.json": 1 for n in range(3)})


def test_ten_thousand_activities(publisher: Publisher, tmp_path: Path) -> None:
    """100 pages of 100 activities on 20 books: each book is read once, its newest activity deciding."""
    books = [publisher.book(n, pages=1) for n in range(20)]
    items = [act("Update", books[i % 20], i) for i in range(10_000)]
    items[-1] = act("Delete", books[19], 9_999)  # book 19's newest activity withdraws it
    stream = publisher.stream([items[p * 100:(p + 1) * 100] for p in range(100)])
    data = tmp_path / "data"
    result = ivs(data, "sync", "-q", "--json", stream)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["streams"][0]["activities"] == 10_000 and summary["streams"][0]["pages"] == 100
    assert publisher.manifest_calls() == Counter({f"/m/{n}.json": 1 for n in range(19)})
    assert max(n for p, n in publisher.calls.items() if p.startswith("/page/")) == 1
    assert manifests(data) == dict.fromkeys(books[:19], "ok")

    publisher.calls.clear()
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert publisher.calls == Counter({"/stream.json": 1, "/page/100.json": 1})


def test_move_add_remove_and_refresh(publisher: Publisher, tmp_path: Path) -> None:
    a, b, c, d, moved, x = (publisher.book(n, pages=1) for n in range(6))
    stream = publisher.url("/stream.json")
    other = "https://aggregator.example/stream"
    first_page = [
        act("Create", a, 0), act("Create", b, 1),
        act("Add", c, 2, target={"id": stream, "type": "OrderedCollection"}),
        act("Add", d, 3, target={"id": other, "type": "OrderedCollection"}),  # another stream's business
        act("Remove", b, 4, origin={"id": stream, "type": "OrderedCollection"}),
        act("Move", a, 5, target={"id": moved, "type": "Manifest"}),
        act("Update", "https://elsewhere.example/canvas/1", 6, object_type="Canvas"),  # not a type we ingest
    ]
    publisher.stream([first_page])
    data = tmp_path / "data"
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert manifests(data) == {c: "ok", moved: "ok"}  # a and b were gone before we ever read them
    assert set(publisher.manifest_calls()) == {"/m/2.json", "/m/4.json"}

    # A publisher's refresh: from a Refresh backwards, a later run applies only deletions.
    publisher.stream([first_page, [act("Create", x, 7), act("Delete", c, 8),
                                   {"type": "Refresh", "startTime": when(9)}, act("Update", moved, 10)]])
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert manifests(data) == {c: "deleted", moved: "ok"}
    assert "/m/5.json" not in publisher.calls

    # A first run stops at the Refresh: everything there is has an activity after it.
    fresh = tmp_path / "fresh"
    assert ivs(fresh, "sync", "-q", stream).exit_code == 0
    assert manifests(fresh) == {moved: "ok"}


def test_a_deleted_collection_takes_the_manifests_only_it_lists(publisher: Publisher, tmp_path: Path) -> None:
    books = [publisher.book(n, pages=1) for n in range(3)]

    def collection(name: str, members: list[str]) -> str:
        return publisher.put(f"/{name}.json", {
            "@context": "http://iiif.io/api/presentation/3/context.json", "id": publisher.url(f"/{name}.json"),
            "type": "Collection", "label": {"en": [name]}, "items": [{"id": m, "type": "Manifest"} for m in members]})

    prints, maps = collection("prints", books[:2]), collection("maps", books[1:])
    pages = [[act("Create", prints, 0, "Collection"), act("Create", maps, 1, "Collection")]]
    stream = publisher.stream(pages)
    data = tmp_path / "data"
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert manifests(data) == dict.fromkeys(books, "ok")
    publisher.stream(pages + [[act("Delete", prints, 2, "Collection")]])
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert manifests(data) == {books[0]: "deleted", books[1]: "ok", books[2]: "ok"}  # book 1 is also a map


def test_a_remote_stream_may_not_name_local_files(publisher: Publisher, tmp_path: Path) -> None:
    local = tmp_path / "local.json"
    local.write_text(json.dumps({"@context": "http://iiif.io/api/presentation/3/context.json", "id": "urn:x",
                                 "type": "Manifest", "label": {"en": ["secret"]}, "items": []}))
    good = publisher.book(1, pages=1)
    stream = publisher.stream([[act("Create", local.as_uri(), 0), act("Create", "ftp://127.0.0.1/m.json", 1),
                                act("Create", good, 2)]])
    data = tmp_path / "data"
    assert ivs(data, "sync", "-q", stream).exit_code == 0
    assert manifests(data) == {good: "ok"}
    with Catalogue(data / "catalogue.sqlite") as catalogue:
        refused = catalogue.quarantined("activity")
    assert len(refused) == 2 and all("may only name http(s)" in r["reason"] for r in refused)

    publisher.files["/page/1.json"] = (json.dumps({
        "type": "OrderedCollectionPage", "prev": {"id": local.as_uri()}, "orderedItems": []}).encode(),
        "application/json")
    result = ivs(data, "sync", "-q", stream)
    assert result.exit_code != 0 and "may only name http(s)" in result.output


def test_undated_and_same_second_activities() -> None:
    """Two activities of one second differ by id (or by type without ids); an undated one is news only once."""
    def applied(at: float | None, kind: str = "Create", aid: str = "") -> Applied:
        return Applied("u", "Manifest", kind, aid, at, "present")

    def activity(kind: str, aid: str = "") -> Activity:
        return Activity.model_validate({"type": kind, "id": aid, "object": {"id": "u", "type": "Manifest"}})

    assert not already_applied(None, activity("Update"), 5.0)
    assert already_applied(applied(5.0), activity("Update"), 4.0)
    assert not already_applied(applied(5.0), activity("Update"), 6.0)
    assert not already_applied(applied(5.0, "Create"), activity("Update"), 5.0)
    assert already_applied(applied(5.0, "Create"), activity("Create"), 5.0)
    assert not already_applied(applied(5.0, "Update", "a/1"), activity("Update", "a/2"), 5.0)
    assert already_applied(applied(5.0, "Update", "a/2"), activity("Update", "a/2"), 5.0)
    assert already_applied(applied(5.0), activity("Update"), None)
    assert not already_applied(applied(None), activity("Update"), 5.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``ivs serve``'s application over a data dir, on loopback in this process."""
    import uvicorn

    from iiif_visual_search.web.app import create_app
    from iiif_visual_search.web.options import ServeOptions

    data = tmp_path / "published"
    Catalogue(data / "catalogue.sqlite").close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    # Small pages, so that the round trip walks several of them.
    app = create_app(Settings(data_dir=data, base_url=base), ServeOptions(activity_page_size=7))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)
    yield base, data
    server.should_exit = True
    thread.join(timeout=10)


def test_our_own_activity_stream_round_trips_into_a_second_data_dir(publisher: Publisher,
                                                                    serving: tuple[str, Path],
                                                                    tmp_path: Path) -> None:
    base, published = serving
    books = [publisher.book(n) for n in range(3)]
    collection = {"@context": "http://iiif.io/api/presentation/3/context.json", "type": "Collection",
                  "id": publisher.url("/books.json"), "label": {"en": ["Books"]},
                  "items": [{"id": b, "type": "Manifest"} for b in books]}
    publisher.put("/books.json", collection)
    assert ivs(published, "ingest", "-q", publisher.url("/books.json")).exit_code == 0
    mirror = tmp_path / "mirror"

    def ours(data: Path) -> dict[str, Any]:
        """Per source manifest: its status and its live regions (canvas, box)."""
        with Catalogue(data / "catalogue.sqlite") as catalogue:
            return {m["label"]: (m["status"], sorted((r["canvas_uri"], r["x"], r["y"], r["w"], r["h"])
                                                     for r in catalogue.regions(m["id"])))
                    for m in catalogue.manifests(include_deleted=True)}

    result = ivs(mirror, "sync", "-q", f"{base}/activity")
    assert result.exit_code == 0, result.output
    assert ours(mirror) == ours(published) and len(ours(mirror)) == 3
    with Catalogue(mirror / "catalogue.sqlite") as catalogue:
        uris = {m["uri"] for m in catalogue.manifests()}
    assert uris == {f"{base}/iiif/{manifest_id_for(b)}/manifest" for b in books}

    # At the source, book 0 loses a page and book 2 leaves the collection; the mirror follows.
    publisher.book(0, without=(1,))
    publisher.put("/books.json", {**collection, "items": collection["items"][:2]})
    assert ivs(published, "ingest", "-q", publisher.url("/books.json")).exit_code == 0
    publisher.calls.clear()
    again = ivs(mirror, "sync", "-q", f"{base}/activity")
    assert again.exit_code == 0, again.output
    assert ours(mirror) == ours(published)
    assert ours(mirror)["Book 2"][0] == "deleted" and len(ours(mirror)["Book 0"][1]) == 2
    # The mirror re-read book 0's layouts, and nothing of book 1.
    assert not any(p.startswith("/alto/1-") for p in publisher.calls)


def test_a_layout_edited_at_the_source_reaches_a_mirror_of_our_activity_stream(publisher: Publisher,
                                                                               serving: tuple[str, Path],
                                                                               tmp_path: Path) -> None:
    """An ALTO file corrected at the source, its manifest unchanged: our regions moved, but the stream announced
    only their annotations, and a mirror that follows manifests never read the corrected file."""
    base, published = serving
    book = publisher.book(0)
    assert ivs(published, "ingest", "-q", book).exit_code == 0
    mirror = tmp_path / "mirror"
    assert ivs(mirror, "sync", "-q", f"{base}/activity").exit_code == 0

    def boxes(data: Path) -> list[tuple[int, int, int, int]]:
        with Catalogue(data / "catalogue.sqlite") as catalogue:
            return sorted((r["x"], r["y"], r["w"], r["h"]) for r in catalogue.regions())

    before = boxes(published)
    assert boxes(mirror) == before and len(before) == 3
    publisher.files["/alto/0-1.xml"] = (alto(0, 1).replace(b'WIDTH="400"', b'WIDTH="250"'), "application/xml")
    assert ivs(published, "ingest", "-q", book).exit_code == 0
    assert boxes(published) != before
    with httpx.Client() as client:
        last = client.get(f"{base}/activity").json()["last"]["id"]
        items = client.get(last).json()["orderedItems"]
    assert items[-1]["type"] == "Update" and items[-1]["object"]["type"] == "Manifest"
    assert ivs(mirror, "sync", "-q", f"{base}/activity").exit_code == 0
    assert boxes(mirror) == boxes(published)
