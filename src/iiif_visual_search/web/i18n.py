"""The search page's words in Norwegian Bokmål and English, and how a request picks one.

Order of choice: ``?lang=`` (the switch writes it into every link, so a permalink keeps its language), then
the browser's Accept-Language, then English. Class labels are the paper's English names in the catalogue;
they are translated for display only, filters keep the stored name.
"""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("en", "nb")
DEFAULT_LANGUAGE = "en"
# Bokmål, and the macro-language and Nynorsk tags browsers send for Norwegian readers.
_NORWEGIAN = ("nb", "no", "nn")

STRINGS: dict[str, dict[str, str]] = {
    "site_title": {"en": "Picture search", "nb": "Bildesøk"},
    "site_tagline": {"en": "Find the pictures in digitised books", "nb": "Finn bildene i digitaliserte bøker"},
    "skip_to_results": {"en": "Skip to results", "nb": "Hopp til resultatene"},
    "language": {"en": "Language", "nb": "Språk"},
    "search_label": {"en": "Search", "nb": "Søk"},
    "search_placeholder": {"en": "e.g. map, portrait, lighthouse", "nb": "f.eks. kart, portrett, fyrtårn"},
    "search_button": {"en": "Search", "nb": "Søk"},
    "search_by": {"en": "Search by", "nb": "Søk etter"},
    "by_context": {"en": "Text around the picture", "nb": "Teksten rundt bildet"},
    "by_meaning": {"en": "Meaning (picture content)", "nb": "Betydning (bildeinnhold)"},
    "image_search": {"en": "Search with a picture", "nb": "Søk med et bilde"},
    "upload_label": {"en": "Picture file", "nb": "Bildefil"},
    "drop_hint": {"en": "Drop a picture here, or choose a file", "nb": "Slipp et bilde her, eller velg en fil"},
    "upload_button": {"en": "Find similar pictures", "nb": "Finn lignende bilder"},
    "url_label": {"en": "Picture URL", "nb": "Bilde-URL"},
    "url_button": {"en": "Search with URL", "nb": "Søk med URL"},
    "filters": {"en": "Filters", "nb": "Filtre"},
    "apply": {"en": "Apply filters", "nb": "Bruk filtrene"},
    "model": {"en": "Embedding model", "nb": "Innbyggingsmodell"},
    "model_text": {"en": "reads text", "nb": "leser tekst"},
    "model_duplicates": {"en": "near-duplicates only", "nb": "bare nesten like bilder"},
    "no_models": {"en": "No model is indexed yet: run ivs embed.", "nb": "Ingen modell er indeksert ennå: kjør ivs embed."},
    "match_mode": {"en": "Picture matching", "nb": "Bildesammenligning"},
    "match_semantic": {"en": "Similar content (semantic)", "nb": "Lignende innhold (semantisk)"},
    "match_duplicate": {"en": "Near-duplicates (fingerprint)", "nb": "Nesten like bilder (fingeravtrykk)"},
    "classes": {"en": "Classes", "nb": "Klasser"},
    "unclassified": {"en": "Not classified", "nb": "Ikke klassifisert"},
    "no_classes": {"en": "No region is classified yet.", "nb": "Ingen regioner er klassifisert ennå."},
    "books": {"en": "Books", "nb": "Bøker"},
    "all_books": {"en": "All books", "nb": "Alle bøker"},
    "collection": {"en": "Collection", "nb": "Samling"},
    "all_collections": {"en": "All collections", "nb": "Alle samlinger"},
    "years": {"en": "Years", "nb": "År"},
    "year_from": {"en": "From year", "nb": "Fra år"},
    "year_to": {"en": "To year", "nb": "Til år"},
    "results": {"en": "Results", "nb": "Resultater"},
    "results_for_text": {"en": "Text around pictures: “{q}”", "nb": "Tekst rundt bilder: «{q}»"},
    "results_for_meaning": {"en": "Pictures that mean: “{q}”", "nb": "Bilder som betyr: «{q}»"},
    "results_for_region": {"en": "Pictures similar to this one", "nb": "Bilder som ligner på dette"},
    "results_for_upload": {"en": "Pictures similar to your picture", "nb": "Bilder som ligner på bildet ditt"},
    "results_for_url": {"en": "Pictures similar to the picture at the URL", "nb": "Bilder som ligner på bildet på URL-en"},
    "query_picture": {"en": "The picture searched with", "nb": "Bildet det søkes med"},
    "welcome": {"en": "Search the text around the pictures, describe a picture, or search with a picture of your own.",
                "nb": "Søk i teksten rundt bildene, beskriv et bilde, eller søk med et eget bilde."},
    "collection_size": {"en": "{regions} pictures in {books} books.", "nb": "{regions} bilder i {books} bøker."},
    "showing": {"en": "Results {first}–{last} of {total}", "nb": "Treff {first}–{last} av {total}"},
    "showing_open": {"en": "Results {first}–{last}", "nb": "Treff {first}–{last}"},
    "no_results": {"en": "No pictures found.", "nb": "Fant ingen bilder."},
    "using_model": {"en": "model {model}", "nb": "modell {model}"},
    "paging": {"en": "Result pages", "nb": "Resultatsider"},
    "previous": {"en": "Previous", "nb": "Forrige"},
    "next": {"en": "Next", "nb": "Neste"},
    "page_n": {"en": "Page {n}", "nb": "Side {n}"},
    "author": {"en": "Author", "nb": "Forfatter"},
    "year": {"en": "Year", "nb": "År"},
    "page": {"en": "Page", "nb": "Side"},
    "class": {"en": "Class", "nb": "Klasse"},
    "score": {"en": "Score", "nb": "Poeng"},
    "relevance": {"en": "Relevance (best = 1)", "nb": "Relevans (best = 1)"},
    "similar": {"en": "Similar", "nb": "Lignende"},
    "similar_to": {"en": "Pictures similar to this one", "nb": "Bilder som ligner på dette"},
    "details": {"en": "Details", "nb": "Detaljer"},
    "open_viewer": {"en": "Open in viewer", "nb": "Åpne i visningen"},
    "institution_page": {"en": "The library's page", "nb": "Bibliotekets side"},
    "picture_alt": {"en": "Picture on page {page} of {title}", "nb": "Bilde på side {page} i {title}"},
    "no_thumbnail": {"en": "No image", "nb": "Uten bilde"},
    "region_title": {"en": "Picture on page {page}", "nb": "Bilde på side {page}"},
    "page_with_box": {"en": "Page {page} of {title}, the picture outlined", "nb": "Side {page} i {title}, med bildet markert"},
    "the_picture": {"en": "The picture", "nb": "Bildet"},
    "context": {"en": "Text around the picture", "nb": "Teksten rundt bildet"},
    "caption": {"en": "Caption", "nb": "Bildetekst"},
    "before": {"en": "Before", "nb": "Før"},
    "after": {"en": "After", "nb": "Etter"},
    "position": {"en": "Position on the page", "nb": "Plassering på siden"},
    "iiif_links": {"en": "IIIF", "nb": "IIIF"},
    "manifest": {"en": "Manifest", "nb": "Manifest"},
    "annotation": {"en": "Region annotation", "nb": "Regionannotasjon"},
    "back_to_search": {"en": "Back to the search", "nb": "Tilbake til søket"},
    "error": {"en": "The search could not be run", "nb": "Søket kunne ikke utføres"},
    "err_no_text_model": {"en": "The model {model} cannot read text. Choose a model that does (SigLIP or CLIP).",
                          "nb": "Modellen {model} kan ikke lese tekst. Velg en modell som kan (SigLIP eller CLIP)."},
    "err_no_model": {"en": "No embedding model is indexed yet.", "nb": "Ingen innbyggingsmodell er indeksert ennå."},
    "err_upload_missing": {"en": "The upload has expired or is unknown; upload the picture again.",
                           "nb": "Opplastingen er utløpt eller ukjent; last opp bildet på nytt."},
    "err_no_file": {"en": "Choose a picture file, or give a picture URL.", "nb": "Velg en bildefil, eller oppgi en bilde-URL."},
    "not_found": {"en": "Not found", "nb": "Ikke funnet"},
    "footer": {"en": "Pictures and text from the libraries' IIIF manifests.",
               "nb": "Bilder og tekst fra bibliotekenes IIIF-manifester."},
    "api_links": {"en": "For machines", "nb": "For maskiner"},
    # The map of every picture (/map)
    "map_title": {"en": "Map of all pictures", "nb": "Kart over alle bildene"},
    "map_link": {"en": "See all pictures on one map", "nb": "Se alle bildene på ett kart"},
    "map_show": {"en": "Show", "nb": "Vis"},
    "map_missing": {"en": "No map for the model {model} yet: run ivs map --model {model}.",
                    "nb": "Ingen kart for modellen {model} ennå: kjør ivs map --model {model}."},
    "map_clusters": {"en": "Groups", "nb": "Grupper"},
    "map_no_clusters": {"en": "No groups found.", "nb": "Fant ingen grupper."},
    "map_iiif": {"en": "The groups as IIIF", "nb": "Gruppene som IIIF"},
    "map_zoom_in": {"en": "Zoom in", "nb": "Zoom inn"},
    "map_zoom_out": {"en": "Zoom out", "nb": "Zoom ut"},
    "map_show_all": {"en": "Show everything", "nb": "Vis alt"},
    "map_loading": {"en": "Loading the map…", "nb": "Laster kartet …"},
    "map_failed": {"en": "The map could not be loaded.", "nb": "Kartet kunne ikke lastes."},
    "map_no_webgl": {"en": "This browser cannot draw the map (WebGL is switched off). The groups are listed beside it.",
                     "nb": "Denne nettleseren kan ikke tegne kartet (WebGL er slått av). Gruppene står ved siden av."},
    "map_no_script": {"en": "The map needs JavaScript. The groups are listed beside it, and as IIIF.",
                      "nb": "Kartet trenger JavaScript. Gruppene står ved siden av, og som IIIF."},
    "map_help": {"en": "Drag to move, scroll to zoom. Keyboard: arrow keys move, + and − zoom, N and P go to the next "
                       "and previous picture, Enter opens the picture, 0 shows everything.",
                 "nb": "Dra for å flytte, rull for å zoome. Tastatur: piltastene flytter, + og − zoomer, N og P går til "
                       "neste og forrige bilde, Enter åpner bildet, 0 viser alt."},
    "map_selected": {"en": "Picture", "nb": "Bilde"},
    "map_hint_select": {"en": "Point at a picture to see where it is from; click it for links.",
                        "nb": "Pek på et bilde for å se hvor det er fra; klikk på det for lenker."},
    "map_hint_selected": {"en": "Selected", "nb": "Valgt"},
    "map_page_of": {"en": "page {page}", "nb": "side {page}"},
    "map_cluster": {"en": "Group", "nb": "Gruppe"},
    "cluster_none": {"en": "In no group", "nb": "I ingen gruppe"},
    "map_count": {"en": "{shown} of {total} pictures shown", "nb": "{shown} av {total} bilder vises"},
}

CLASS_NAMES_NB: dict[str, str] = {
    "Blank page": "Blank side",
    "Segmentation anomaly": "Segmenteringsfeil",
    "Illustration or photograph": "Illustrasjon eller fotografi",
    "Musical notation": "Noter",
    "Map": "Kart",
    "Mathematical chart": "Matematisk diagram",
    "Graphical element": "Grafisk element",
}


def pick_language(query_lang: str | None, accept_language: str | None) -> str:
    """``en`` or ``nb``: the explicit choice, else the first supported Accept-Language entry by q-value."""
    if query_lang:
        code = query_lang.strip().lower().split("-")[0]
        if code in _NORWEGIAN:
            return "nb"
        if code in LANGUAGES:
            return code
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        q = 1.0
        for p in pieces[1:]:
            if p.strip().startswith("q="):
                try:
                    q = float(p.strip()[2:])
                except ValueError:
                    q = 0.0
        if tag and q > 0:
            ranked.append((-q, n, tag.split("-")[0]))
    for _, _, code in sorted(ranked):
        if code in _NORWEGIAN:
            return "nb"
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)``: the string in ``lang`` (English when missing), formatted with ``values``."""

    def t(key: str, **values: object) -> str:
        entry = STRINGS.get(key)
        if entry is None:
            return key
        text = entry.get(lang) or entry[DEFAULT_LANGUAGE]
        return text.format(**values) if values else text

    return t


def class_name(label: str, lang: str) -> str:
    return CLASS_NAMES_NB.get(label, label) if lang == "nb" else label
