"""User text in Markdown, shown as written: escaping for Streamlit's Markdown elements (no links,
images, emphasis or HTML from a folder or checkpoint name), apart from the widgets so the loaders
can use it without importing them."""
from __future__ import annotations

import re

_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]<>()#+-.!|$:~"})


def literal(text) -> str:
    """User text (a folder, file, dataset or checkpoint name, an error quoting one) for a Markdown
    element, every special character escaped: shown as written, never read as a link, an image
    to fetch, emphasis or HTML. GFM's autolinks (`http://...`, `www.`) survive escaping, so a
    zero-width space breaks each one: the text reads the same, nothing becomes a link."""
    escaped = str(text).translate(_MARKDOWN_SPECIAL)
    return _WWW.sub("\\1\u200b\\2", escaped.replace("\\://", "\\:\u200b//"))


_WWW = re.compile(r"(?i)(www)(\\\.)")


def readable(text) -> str:
    """A message for Markdown, escaped as `literal` except its `code` spans (a command to run),
    which are drawn as code instead of showing their backticks."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: the last one is plain text
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(f"`{part}`" if i % 2 else literal(part) for i, part in enumerate(parts) if part or not i % 2)


def markdown_table(rows: list[dict]) -> str:
    """A small table as Markdown, every cell escaped (no emphasis, maths or :emoji: codes from a
    checkpoint name). A page's few-row table drawn this way costs a new viewer no extra files,
    where st.table makes the browser fetch its table and number-formatting code (~0.8 MB)."""
    if not rows:
        return ""
    def cell(value) -> str:
        return str(value).translate(_MARKDOWN_SPECIAL)
    columns = list(rows[0])
    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
