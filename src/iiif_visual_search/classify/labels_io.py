"""Labels in: Label Studio JSON exports, the CHR24 format, and plain CSV; matched to catalogue regions.

Every reader returns :class:`LabelItem`s keyed either by a region id or by an image URL. URL keys are
matched to regions by the IIIF Image API region in the URL (``{service}/{x},{y},{w},{h}/{size}/…``):
same image service as a canvas, and the same box up to a small rounding tolerance.

Multi-label rows: the CHR24 notebook took ``argmax`` over the label columns, which silently keeps the
first true column. We train single-label (multinomial) models like the paper, but a row with several
true columns is reported and skipped by default instead of being resolved by column order
(``multi="first"`` restores the paper's behaviour).
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..catalogue import Catalogue
from .classes import PAPER_CLASSES, canonical_class

MultiPolicy = Literal["skip", "first"]


@dataclass(frozen=True)
class LabelItem:
    key: str  # a region id or an image URL
    kind: Literal["region", "url"]
    label: str


@dataclass
class ReadResult:
    items: list[LabelItem] = field(default_factory=list)
    multi_label: list[str] = field(default_factory=list)  # keys with several classes (skipped unless "first")
    no_label: list[str] = field(default_factory=list)
    unknown_class: dict[str, int] = field(default_factory=dict)  # label text not in the class list -> count

    def note_unknown(self, name: str) -> None:
        self.unknown_class[name] = self.unknown_class.get(name, 0) + 1


def _resolve(key: str, kind: Literal["region", "url"], names: Sequence[str], classes: Sequence[str],
             multi: MultiPolicy, out: ReadResult, order: Sequence[str] | None = None) -> None:
    known: list[str] = []
    for name in names:
        cls = canonical_class(name, classes)
        if cls is None:
            out.note_unknown(name)
        elif cls not in known:
            known.append(cls)
    if not known:
        if not names:
            out.no_label.append(key)
        return
    if len(known) > 1:
        out.multi_label.append(key)
        if multi == "skip":
            return
        if order is not None:  # the paper's argmax: the first true column of the file
            known.sort(key=lambda c: order.index(c) if c in order else len(order))
    out.items.append(LabelItem(key, kind, known[0]))


# --- CHR24 -------------------------------------------------------------------------------------

def read_chr24(path: Path | str, classes: Sequence[str] = PAPER_CLASSES,
               multi: MultiPolicy = "skip") -> ReadResult:
    """The CHR24 labels: an image URL and one true/false column per class.

    Accepts the published ``labelled_data.json`` (pandas "columns" orientation, ``{class: {url: bool}}``),
    the "records" orientation (``[{"url": …, class: bool, …}]``) and a CSV with a ``url`` column.
    """
    path = Path(path)
    rows: dict[str, dict[str, bool]] = {}
    columns: list[str] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c for c in reader.fieldnames or [] if c and c.lower() != "url"]
            for row in reader:
                url = (row.get("url") or "").strip()
                if url:
                    rows[url] = {c: _truthy(row.get(c)) for c in columns}
    else:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            columns = list(data)
            for column, by_url in data.items():
                if not isinstance(by_url, dict):
                    raise ValueError(f"{path}: column {column!r} is not a {{url: bool}} mapping")
                for url, value in by_url.items():
                    rows.setdefault(url, {})[column] = _truthy(value)
        elif isinstance(data, list):
            for record in data:
                if not isinstance(record, dict):
                    raise ValueError(f"{path}: expected a list of {{url: …, class: bool}} records, "
                                     f"found a {type(record).__name__}")
                url = str(record.get("url") or record.get("image") or "")
                flags = {k: _truthy(v) for k, v in record.items() if k not in ("url", "image")}
                for k in flags:
                    if k not in columns:
                        columns.append(k)
                if url:
                    rows[url] = flags
        else:
            raise ValueError(f"{path}: not a CHR24 label file")
    order = [c for c in (canonical_class(col, classes) for col in columns) if c is not None]
    out = ReadResult()
    for url, flags in rows.items():
        _resolve(url, "url", [c for c, v in flags.items() if v], classes, multi, out, order)
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "t")
    return bool(value)


# --- Label Studio ------------------------------------------------------------------------------

def read_label_studio(path: Path | str, classes: Sequence[str] = PAPER_CLASSES,
                      multi: MultiPolicy = "skip") -> ReadResult:
    """A Label Studio export (JSON, or JSON-MIN) of a ``Choices`` labelling task.

    The latest annotation that was not cancelled wins. A task is keyed by ``data.region_id`` when
    present, else by its image URL (the first ``data`` value that looks like a URL).
    """
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    out = ReadResult()
    for task in data:
        if not isinstance(task, dict):
            raise ValueError(f"{path}: expected Label Studio tasks (JSON objects), found a {type(task).__name__}")
        payload = task.get("data") if isinstance(task.get("data"), dict) else task
        key, kind = _task_key(payload)
        if not key:
            continue
        if "annotations" in task or "completions" in task:
            names = _choices_from_annotations(task.get("annotations") or task.get("completions") or [])
        else:  # JSON-MIN: the Choices tag's name maps to a string or {"choices": [...]}
            names = []
            for value in task.values():
                if isinstance(value, dict) and isinstance(value.get("choices"), list):
                    names.extend(str(v) for v in value["choices"])
            if not names:
                for k in ("choice", "label", "class"):
                    if isinstance(task.get(k), str):
                        names.append(task[k])
        _resolve(key, kind, names, classes, multi, out)
    return out


def _task_key(payload: dict[str, Any]) -> tuple[str, Literal["region", "url"]]:
    if payload.get("region_id"):
        return str(payload["region_id"]), "region"
    for name in ("image", "url", "image_url"):
        if isinstance(payload.get(name), str) and payload[name]:
            return payload[name], "url"
    for value in payload.values():
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value, "url"
    return "", "url"


def _choices_from_annotations(annotations: list[dict[str, Any]]) -> list[str]:
    live = [a for a in annotations if not a.get("was_cancelled")]
    if not live:
        return []
    latest = max(live, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id") or 0))
    names: list[str] = []
    for result in latest.get("result") or []:
        if result.get("type") == "choices":
            names.extend(str(c) for c in (result.get("value") or {}).get("choices") or [])
    return names


# --- CSV ---------------------------------------------------------------------------------------

def read_csv_labels(path: Path | str, classes: Sequence[str] = PAPER_CLASSES) -> ReadResult:
    """``region_id,label`` (or ``url,label``); a label cell may hold several classes separated by ``|``."""
    out = ReadResult()
    with Path(path).open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        if "label" not in fields or not ({"region_id", "url"} & set(fields)):
            raise ValueError(f"{path}: expected columns region_id,label (or url,label), got {fields}")
        for row in reader:
            if row.get("region_id"):
                key, kind = row["region_id"].strip(), "region"
            else:
                key, kind = (row.get("url") or "").strip(), "url"
            if key:
                names = [n for n in (row.get("label") or "").split("|") if n.strip()]
                _resolve(key, kind, names, classes, "skip", out)  # type: ignore[arg-type]
    return out


def read_labels(path: Path | str, fmt: str = "auto", classes: Sequence[str] = PAPER_CLASSES,
                multi: MultiPolicy = "skip") -> ReadResult:
    """Any supported label file; ``fmt`` is auto, chr24, label-studio or csv."""
    path = Path(path)
    try:
        if fmt == "auto":
            fmt = _sniff(path)
        if fmt == "chr24":
            return read_chr24(path, classes, multi)
        if fmt == "label-studio":
            return read_label_studio(path, classes, multi)
        if fmt == "csv":
            return read_csv_labels(path, classes)
    except json.JSONDecodeError as e:  # bare, it names neither the file nor what was expected
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from e
    raise ValueError(f"unknown label format {fmt!r} (auto, chr24, label-studio, csv)")


def _sniff(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), [])
        return "csv" if "label" in header else "chr24"
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()) and "data" not in data:
        return "chr24"
    if isinstance(data, list) and data and isinstance(data[0], dict) and (
        "data" in data[0] or "annotations" in data[0] or "choice" in data[0]
    ):
        return "label-studio"
    if isinstance(data, list):
        return "chr24"
    return "label-studio"


# --- URL → region --------------------------------------------------------------------------------

# {base}/{region}/{size}/{rotation}/{quality}.{format}; the region in absolute pixels.
_REGION_URL = re.compile(
    r"^(?P<base>.+?)/(?P<x>\d+(?:\.\d+)?),(?P<y>\d+(?:\.\d+)?),(?P<w>\d+(?:\.\d+)?),(?P<h>\d+(?:\.\d+)?)"
    r"/[^/]+/!?\d+(?:\.\d+)?/[^/.]+\.\w+$"
)


def parse_region_url(url: str) -> tuple[str, tuple[float, float, float, float]] | None:
    """(image service base, (x, y, w, h) in image pixels) of an IIIF Image API region URL, or None."""
    match = _REGION_URL.match(url.strip())
    if match is None:
        return None
    box = tuple(float(match[k]) for k in ("x", "y", "w", "h"))
    return match["base"], box  # type: ignore[return-value]


def service_key(base: str) -> str:
    """Service ids compare equal across http/https, trailing slashes, ``/info.json`` and %-escaping case."""
    key = base.strip()
    if key.endswith("/info.json"):
        key = key[: -len("/info.json")]
    key = key.rstrip("/")
    key = re.sub(r"^https?://", "", key)
    return re.sub(r"%[0-9a-fA-F]{2}", lambda m: m[0].upper(), key)


@dataclass
class MatchReport:
    matched: list[tuple[str, str, str]] = field(default_factory=list)  # (key, region id, label)
    no_canvas: list[str] = field(default_factory=list)  # URL whose image service no canvas has
    no_region: list[str] = field(default_factory=list)  # canvas found, no region with that box
    unparsable: list[str] = field(default_factory=list)
    unknown_region: list[str] = field(default_factory=list)  # region ids not in the catalogue


class RegionMatcher:
    """Finds the catalogue region an IIIF region URL shows.

    URL boxes are in image pixels; regions are in canvas pixels, so each box is scaled by
    canvas size / image size when the catalogue knows the image size. A match must agree on every
    coordinate within ``max(tolerance_px, tolerance_frac × side)``: exporters round, and some
    services snap regions to even pixels.
    """

    def __init__(self, catalogue: Catalogue, tolerance_px: float = 2.0, tolerance_frac: float = 0.01) -> None:
        self.tolerance_px = tolerance_px
        self.tolerance_frac = tolerance_frac
        self._canvases: dict[str, list[sqlite3.Row]] = {}
        for row in catalogue.query(
            "SELECT id, width, height, image_service, image_url, image_width, image_height FROM canvas"
        ):
            for ref in (row["image_service"], _service_of_image_url(row["image_url"])):
                if ref:
                    self._canvases.setdefault(service_key(ref), []).append(row)
        self._regions: dict[str, list[sqlite3.Row]] = {}
        for row in catalogue.query("SELECT id, canvas_id, x, y, w, h FROM region WHERE deleted=0"):
            self._regions.setdefault(row["canvas_id"], []).append(row)

    def match(self, url: str) -> tuple[str | None, str]:
        """(region id or None, reason when None: unparsable | no_canvas | no_region)."""
        parsed = parse_region_url(url)
        if parsed is None:
            return None, "unparsable"
        base, (x, y, w, h) = parsed
        canvases = self._canvases.get(service_key(base))
        if not canvases:
            return None, "no_canvas"
        best: tuple[float, str] | None = None
        for canvas in canvases:
            sx = canvas["width"] / canvas["image_width"] if canvas["image_width"] else 1.0
            sy = canvas["height"] / canvas["image_height"] if canvas["image_height"] else 1.0
            box = (x * sx, y * sy, w * sx, h * sy)
            tol_x = max(self.tolerance_px, self.tolerance_frac * box[2])
            tol_y = max(self.tolerance_px, self.tolerance_frac * box[3])
            for region in self._regions.get(canvas["id"], []):
                dx = max(abs(region["x"] - box[0]), abs(region["w"] - box[2]))
                dy = max(abs(region["y"] - box[1]), abs(region["h"] - box[3]))
                if dx <= tol_x and dy <= tol_y:
                    score = dx + dy
                    if best is None or score < best[0]:
                        best = (score, region["id"])
        if best is None:
            return None, "no_region"
        return best[1], ""


def missing_books(urls: Iterable[str]) -> list[tuple[str, int]]:
    """The books that labels with no canvas point at, as (image service without its page part, labels), most
    labels first. A page's service is usually its book's id plus a page number (NB's
    ``…/URN:NBN:no-nb_digibok_2009042803019_0104``, Gallica's ``…/ark:/12148/bpt6k…/f12``): that is what a
    librarian looks the manifest up by."""
    counts: dict[str, int] = {}
    for url in urls:
        parsed = parse_region_url(url)
        if parsed is None:
            continue
        book = re.sub(r"([_/.-]f?)\d{1,5}$", "", parsed[0].rstrip("/"))
        counts[book] = counts.get(book, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _service_of_image_url(image_url: str) -> str:
    """The service base of a full-image Image API URL (``…/full/max/0/default.jpg``), else ''."""
    match = re.match(r"^(.+?)/full/[^/]+/!?\d+(?:\.\d+)?/[^/.]+\.\w+$", image_url or "")
    return match[1] if match else ""


def match_items(catalogue: Catalogue, items: Iterable[LabelItem], tolerance_px: float = 2.0) -> MatchReport:
    report = MatchReport()
    matcher: RegionMatcher | None = None
    known_ids: set[str] | None = None
    for item in items:
        if item.kind == "region":
            if known_ids is None:
                known_ids = {r["id"] for r in catalogue.query("SELECT id FROM region WHERE deleted=0")}
            if item.key in known_ids:
                report.matched.append((item.key, item.key, item.label))
            else:
                report.unknown_region.append(item.key)
            continue
        if matcher is None:
            matcher = RegionMatcher(catalogue, tolerance_px=tolerance_px)
        region_id, reason = matcher.match(item.key)
        if region_id is not None:
            report.matched.append((item.key, region_id, item.label))
        else:
            getattr(report, reason).append(item.key)
    return report


# --- the label table -----------------------------------------------------------------------------

def store_labels(catalogue: Catalogue, rows: Iterable[tuple[str, str, float | None]], source: str,
                 model_version: str = "") -> int:
    """Upsert (region id, label, probability) rows into the label table; one row per region and source."""
    return catalogue.set_labels(rows, source, model_version)


def manual_labels(catalogue: Catalogue) -> dict[str, str]:
    """region id → manual label, for regions still in the catalogue."""
    return {r["region_id"]: r["label"] for r in catalogue.query(
        "SELECT l.region_id, l.label FROM label l JOIN region r ON r.id = l.region_id "
        "WHERE l.source='manual' AND r.deleted=0 ORDER BY l.region_id")}
