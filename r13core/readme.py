"""A package's README as HTML that is safe to put in the dashboard (docs/dashboard.md).

The README comes from whoever published the package, so it is hostile until shown
otherwise. :func:`render_readme` turns its markdown into HTML with markdown-it-py
(CommonMark, raw HTML in the source allowed through to the sanitiser, tables and
strikethrough on) and then sanitises that HTML with nh3 against an allow-list:

- elements: text structure only (headings, paragraphs, lists, tables, code, quotes,
  links, images, ``details``/``summary``); never ``script``, ``style``, ``iframe``,
  ``object``, ``embed``, ``form``, ``input``, ``svg``, ``math``, ``base``, ``meta``;
- attributes: ``href`` and ``title`` on links, ``src``/``alt``/``title``/``width``/
  ``height`` on images, ``align`` on table cells, ``class`` nowhere except
  ``language-*`` on ``code``; never an event handler (``on*``), never ``style``,
  never ``id``/``name`` (no clobbering of the page's own elements);
- URLs: ``http``, ``https`` and ``mailto`` only, or relative; ``javascript:``,
  ``data:``, ``vbscript:`` are dropped (the element stays, without the attribute);
- every link gets ``rel="noopener noreferrer nofollow"``.

The dashboard inserts the result into a sandbox-free ``<div>`` of a page whose
Content-Security-Policy forbids inline script, so even a sanitiser miss could not run
script; the sanitiser is the first wall, the CSP the second.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from r13core.cooperative import off_hub

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

MAX_README: Final = 64 * 1024
"""Characters of README rendered; the rest is cut, with a note. Rendering is pure Python
(0.8 s for 64 KiB of dense markdown on this machine under test load): it runs off the
gevent hub (r13core/cooperative.py ``off_hub``), and each text is rendered once per
worker (an LRU of :data:`CACHED` results keyed by the text's SHA-256)."""
CACHED: Final = 64

_TAGS: Final = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl",
        "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
        "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
        "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul",
    }
)  # fmt: skip
_ATTRIBUTES: Final = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
    "abbr": {"title"},
}
_SCHEMES: Final = frozenset({"http", "https", "mailto"})


@functools.cache
def _markdown() -> MarkdownIt:
    # Imported and built on the first README rendered: no request before it needs them.
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def _code_class(tag: str, attr: str, value: str) -> str | None:
    """Keep ``class="language-x"`` on ``code`` (for highlighting by class), nothing else."""
    if tag == "code" and attr == "class":
        parts = [p for p in value.split() if p.startswith("language-") and p[9:].isalnum()]
        return " ".join(parts) or None
    return value


def sanitize_html(html: str) -> str:
    """``html`` with everything outside the allow-list above removed."""
    import nh3

    return nh3.clean(
        html,
        tags=set(_TAGS),
        clean_content_tags={"script", "style"},
        attributes={**{k: set(v) for k, v in _ATTRIBUTES.items()}, "code": {"class"}},
        attribute_filter=_code_class,
        url_schemes=set(_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def _render(text: str) -> str:
    html = _markdown().render(text[:MAX_README])
    if len(text) > MAX_README:
        html += f"<p><em>(README cut at {MAX_README // 1024} KiB)</em></p>"
    return sanitize_html(html)


_cache: OrderedDict[bytes, str] = OrderedDict()
_cache_lock = threading.Lock()


def render_readme(text: object) -> str:
    """A README (markdown) as sanitised HTML; ``""`` when there is none."""
    if not isinstance(text, str) or not text.strip():
        return ""
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    html = off_hub(_render, text)
    with _cache_lock:
        _cache[key] = html
        while len(_cache) > CACHED:
            _cache.popitem(last=False)
    return html


__all__ = ["CACHED", "MAX_README", "render_readme", "sanitize_html"]
