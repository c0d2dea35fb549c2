"""The README is the front door: short, its links lead somewhere, and its three-minute tour quotes
what the app says on the shipped data (as do the manual's pages where they quote the app). Each
`<!-- tour: URL -->` marks the quotes (a blockquote, each paragraph or list item of it one quote)
or the table that follow it; the page at URL is rendered on a database built as the first start
builds it, and every quote must be in its text, every table row in its table."""
import re
import shutil
import urllib.parse
from dataclasses import dataclass, field

import pytest

from engine.catalog import refresh
from engine.store import Store
from tests.app.test_app import open_page
from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_README_LINES = 200
MARKER = re.compile(r"^<!-- tour: (\S+) -->$")


@dataclass
class Stop:
    url: str
    quotes: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)  # header first


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def tour_stops(text: str) -> list[Stop]:
    """Each marker with the blockquote paragraphs or Markdown table right after it."""
    stops, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if not (m := MARKER.match(line.strip())):
            continue
        stop, paragraph = Stop(m.group(1)), []
        for following in lines[i + 1:]:
            if following.startswith(">"):
                body = following[1:].strip()
                if body.startswith("- "):  # a list item: a quote of its own
                    if paragraph:
                        stop.quotes.append(" ".join(paragraph))
                    paragraph = [body[2:]]
                elif body:
                    paragraph.append(body)
                elif paragraph:
                    stop.quotes.append(" ".join(paragraph))
                    paragraph = []
            elif following.startswith("|"):
                if not following.startswith("|---"):
                    stop.table.append(_cells(following))
            else:
                break
        if paragraph:
            stop.quotes.append(" ".join(paragraph))
        stops.append(stop)
    return stops


def plain(markdown: str) -> str:
    """What a reader sees of the app's Markdown: escapes, emphasis and code marks dropped."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("**", "").replace("*", "").replace("`", "")


def _open(url: str):
    parts = urllib.parse.urlsplit(url)
    page = parts.path.strip("/") or "overview"
    return open_page(f"pages/{page}.py", dict(urllib.parse.parse_qsl(parts.query)))


def _matches(shown, written: str) -> bool:
    """A table cell as the README writes it against the page's value: numbers to the digits written."""
    if isinstance(shown, (int, float)) and re.fullmatch(r"-?\d+(\.\d+)?", written):
        digits = len(written.partition(".")[2])
        return abs(float(written) - float(shown)) <= 0.5 * 10 ** -digits + 1e-9
    return str(shown) == written


def test_the_readme_fits_two_screens_and_its_links_lead_somewhere():
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#")[0] for link in links if "://" not in link]
    assert local, "the README links into the manual"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_the_tour_is_parsed_as_written():
    """The parser itself, on a planted README: two quotes, then a table; prose ends a stop."""
    planted = ("<!-- tour: /budget -->\n> first line\n> goes on\n>\n> second\n> - item one\n> - item two\n\nprose\n"
               "<!-- tour: /?zoo=image-text -->\n| a | b |\n|---|---|\n| 1.5 | x |\n")
    first, second = tour_stops(planted)
    assert (first.url, first.quotes, first.table) == ("/budget", ["first line goes on", "second", "item one", "item two"], [])
    assert (second.url, second.quotes, second.table) == ("/?zoo=image-text", [], [["a", "b"], ["1.5", "x"]])
    assert _matches(84.049, "84.05") and not _matches(84.06, "84.05") and not _matches("ViT", "ConvNet")


@pytest.fixture(scope="module")
def shipped_db(tmp_path_factory):
    """The catalog and the shipped snapshots of timm's and OpenCLIP's published results, loaded as
    a new clone's first start loads them (no ../shared, no network)."""
    path = tmp_path_factory.mktemp("shipped") / "shipped.duckdb"
    report = refresh.refresh(Store(path))
    assert "shipped snapshot" in report.published, report.published
    return path


README_STOPS = tour_stops(README.read_text())
# The manual's pages quote the app the same way.
STOPS = [*README_STOPS, *(stop for page in sorted((ROOT / "docs").glob("*.md")) for stop in tour_stops(page.read_text()))]


def test_the_readme_has_a_tour():
    assert len(README_STOPS) >= 4 and all(stop.quotes or stop.table for stop in STOPS)


@pytest.mark.parametrize("stop", STOPS, ids=[f"{i}:{stop.url}" for i, stop in enumerate(STOPS)])
def test_each_tour_quote_is_what_the_app_says_on_the_shipped_data(stop, shipped_db, tmp_path, monkeypatch):
    db = tmp_path / "shipped.duckdb"
    shutil.copy(shipped_db, db)
    monkeypatch.setenv("MATCHUP_DB", str(db))
    at = _open(stop.url)
    assert not at.exception, at.exception
    shown = plain("\n".join(e.value for e in [*at.markdown, *at.caption]))
    for quote in stop.quotes:
        assert plain(quote) in shown, f"{stop.url}: the app no longer says: {quote}"
    if stop.table:
        header, *rows = stop.table
        [frame] = [df.value for df in at.dataframe if set(header) <= set(df.value.columns)][:1] or [None]
        assert frame is not None, f"{stop.url}: no table with the columns {header}"
        for row in rows:
            [match] = [r for _, r in frame.iterrows() if _matches(r[header[0]], row[0])][:1] or [None]
            assert match is not None, f"{stop.url}: no row {header[0]} = {row[0]}"
            wrong = {h: (w, match[h]) for h, w in zip(header, row) if not _matches(match[h], w)}
            assert not wrong, f"{stop.url}, {header[0]} = {row[0]}: README says / the app shows {wrong}"
