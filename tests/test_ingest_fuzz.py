"""Hostile and broken input through one ``ivs ingest`` run: real manifests and layout files from ../shared/data,
mutated with a fixed seed (non-finite, negative and huge numbers, NUL bytes, truncation, wrong types, links to
devices and folders). Nothing may abort the run, and every unmutated document must still be ingested."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from datapaths import shared
from iiif_visual_search.catalogue import Catalogue, manifest_id_for
from iiif_visual_search.cli import main
from iiif_visual_search.sources.layout import read_layout
from iiif_visual_search.sources.manifest import parse_bytes

SEED = 20240612
GOOD_MANIFESTS = 24
MUTATED_LAYOUTS = 160
MUTATED_MANIFESTS = 160
MAX_LAYOUT_BYTES = 300_000

HOSTILE_NUMBERS = ["inf", "-inf", "1e400", "-1e400", "NaN", "nan", "-5", "-0", "0", "9223372036854775808",
                   "1e-300", "1e308", "", "abc", "12,5", " 7 ", "0x10", "1_000", "\u0661\u0662"]
HOSTILE_JSON_NUMBERS: list[Any] = [2 ** 63, 2 ** 64 + 1, -5, 0, 1e308, float("inf"), float("nan"), "1e400",
                                   "NaN", True, None, [], {}, "12px", 10 ** 30]
HOSTILE_LINKS = ["file:///dev/zero", "/dev/zero", "/proc/self/environ", "/", "file:///etc/", "layout\x00.xml",
                 "ftp://example.invalid/a.xml", "data:text/xml,<alto/>", "file://", "", "\ud800.xml",
                 "http://[::1", "x" * 5000]
_NUMERIC_ATTR = re.compile(rb'\b(HPOS|VPOS|WIDTH|HEIGHT|imageWidth|imageHeight|points|x|y)="([^"]*)"')


def _layout_files() -> list[tuple[Path, str]]:
    """Real layout files that read cleanly, have a page size and at least one region: (path, format)."""
    root = shared()
    found = []
    for path in sorted(root.rglob("*.xml")):
        if path.stat().st_size > MAX_LAYOUT_BYTES:
            continue
        try:
            page = read_layout(path.read_bytes())
        except Exception:  # noqa: BLE001 - only files that read cleanly are templates
            continue
        if page.regions and page.width > 0 and page.height > 0:
            found.append((path, page.format))
    return found


def _manifest_templates() -> list[dict[str, Any]]:
    """Real manifests (2.1 and 3.0) cut to their first canvas, with every layout link removed."""
    templates = []
    for path in sorted((shared() / "iiif").rglob("*.json")):
        try:
            record = parse_bytes(path.read_bytes(), url=str(path))
        except Exception:  # noqa: BLE001
            continue
        raw = getattr(record, "raw", None)
        if not getattr(record, "canvases", None) or not isinstance(raw, dict):
            continue
        raw = copy.deepcopy(raw)
        if "items" in raw:
            raw["items"] = raw["items"][:1]
            canvas = raw["items"][0]
        else:
            raw["sequences"] = raw["sequences"][:1]
            raw["sequences"][0]["canvases"] = raw["sequences"][0]["canvases"][:1]
            canvas = raw["sequences"][0]["canvases"][0]
        for key in ("seeAlso", "rendering", "annotations", "otherContent"):
            canvas.pop(key, None)
        templates.append(raw)
    return templates


def _canvas(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["items"][0] if "items" in doc else doc["sequences"][0]["canvases"][0]


def _manifest(template: dict[str, Any], ident: str, layout: str, fmt: str) -> dict[str, Any]:
    doc = copy.deepcopy(template)
    v3 = "items" in doc
    doc["id" if v3 else "@id"] = ident
    media = "application/alto+xml" if fmt == "alto" else "application/vnd.prima.page+xml"
    link = {"id": layout, "type": "Dataset", "format": media} if v3 else {"@id": layout, "format": media}
    _canvas(doc)["seeAlso"] = [link]
    return doc


def _mutate_layout(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind <= 2:  # hostile numbers in coordinates and page sizes: the common case, so three draws in six
        matches = list(_NUMERIC_ATTR.finditer(data))
        if matches:
            out = bytearray(data)
            for m in sorted(rng.sample(matches, min(len(matches), rng.randint(1, 4))), key=lambda m: -m.start()):
                value = rng.choice(HOSTILE_NUMBERS).encode("utf-8")
                if m.group(1) == b"points":
                    value = b" ".join([value] * rng.choice((1, 2, 3, 8)))
                out[m.start(2):m.end(2)] = value
            return bytes(out)
    if kind == 3:
        return data[: rng.randrange(len(data))]
    if kind == 4:
        at = rng.randrange(len(data))
        return data[:at] + rng.choice([b"\x00", b"\xff\xfe", b"&unknown;", b"<", b"]]>"]) + data[at:]
    return data.replace(b"Illustration", b"Illustration\x00", 1).replace(b"Page", b"Pag", 1)


def _mutate_manifest(doc: dict[str, Any], rng: random.Random) -> Any:
    kind = rng.randrange(7)
    canvas = _canvas(doc)
    if kind == 0:
        canvas[rng.choice(["width", "height"])] = rng.choice(HOSTILE_JSON_NUMBERS)
    elif kind == 1:
        link = canvas["seeAlso"][0]
        link["id" if "id" in link else "@id"] = rng.choice(HOSTILE_LINKS)
    elif kind == 2:
        doc.pop(rng.choice(sorted(doc)), None)
    elif kind == 3:
        key = rng.choice(sorted(canvas))
        canvas[key] = rng.choice(HOSTILE_JSON_NUMBERS + ["", "\x00", {"a": [1]}])
    elif kind == 4:
        return json.dumps(doc)[: rng.randrange(2, 400)]
    elif kind == 5:
        doc["homepage" if "items" in doc else "related"] = [{"id": "javascript:alert(1)", "type": "Text"}]
        canvas["width"] = rng.choice(HOSTILE_JSON_NUMBERS)
    else:  # nested deeper than any parser's stack
        depth = rng.choice((10, 500, 50_000))
        doc["label"] = "NESTED"
        return json.dumps(doc).replace('"NESTED"', "[" * depth + "1" + "]" * depth)
    return doc


@pytest.mark.timeout(300)
def test_one_ingest_run_survives_hundreds_of_mutated_documents(tmp_path: Path) -> None:
    layouts = _layout_files()
    templates = _manifest_templates()
    if len(layouts) < 4 or not templates:
        pytest.skip("not enough layout files or manifests in the shared data")
    rng = random.Random(SEED)
    folder = tmp_path / "docs"
    folder.mkdir()
    sources: list[str] = []
    good: list[str] = []

    def write(name: str, body: Any) -> str:
        path = folder / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8",
                            errors="surrogatepass")
        return str(path)

    for i in range(GOOD_MANIFESTS):
        layout, fmt = layouts[i % len(layouts)]
        ident = f"https://fuzz.example.org/good/{i}"
        sources.append(write(f"good-{i}.json", _manifest(templates[i % len(templates)], ident, str(layout), fmt)))
        good.append(ident)
    for i in range(MUTATED_LAYOUTS):
        layout, fmt = rng.choice(layouts)
        bad = write(f"layout-{i}.xml", _mutate_layout(layout.read_bytes(), rng))
        doc = _manifest(rng.choice(templates), f"https://fuzz.example.org/bad-layout/{i}", bad, fmt)
        sources.append(write(f"bad-layout-{i}.json", doc))
    for i in range(MUTATED_MANIFESTS):
        layout, fmt = rng.choice(layouts)
        doc = _manifest(rng.choice(templates), f"https://fuzz.example.org/bad-manifest/{i}", str(layout), fmt)
        sources.append(write(f"bad-manifest-{i}.json", _mutate_manifest(doc, rng)))
    rng.shuffle(sources)

    data_dir = tmp_path / "data"
    # No document here names the network on purpose; a mutation that does must fail fast, not wait.
    env = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), "ingest", "--quiet", *sources], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output[-3000:]
    assert "Traceback" not in result.output

    with Catalogue(data_dir / "catalogue.sqlite") as catalogue:
        for ident in good:
            mid = manifest_id_for(ident)
            row = catalogue.find_manifest(mid)
            assert row is not None and row["status"] == "ok", ident
            canvases = catalogue.canvases(mid)
            assert [c["layout_status"] for c in canvases] == ["ok"], ident
            assert catalogue.query_one("SELECT COUNT(*) FROM region WHERE manifest_id=?", (mid,))[0] > 0, ident
        quarantined = catalogue.quarantined()
        assert len(quarantined) > MUTATED_LAYOUTS // 4, "the mutations should break many documents"
        # Every stored number is one SQLite and the geometry can hold; no box runs past its canvas.
        bad = catalogue.query(
            "SELECT r.id FROM region r JOIN canvas c ON c.id = r.canvas_id WHERE r.x < 0 OR r.y < 0 OR r.w < 1 "
            "OR r.h < 1 OR r.x + r.w > c.width OR r.y + r.h > c.height")
        assert not bad
        assert catalogue.query_one("SELECT MAX(width) FROM canvas")[0] <= 10_000_000
