"""The README sanitiser (r13core/readme.py): hostile markdown and HTML come out inert."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r13core.readme import MAX_README, render_readme, sanitize_html

ALLOWED_ATTRS = {"href", "title", "src", "alt", "width", "height", "align", "start", "class", "rel"}
DANGEROUS_TAGS = {
    "script", "style", "iframe", "object", "embed", "form", "input", "svg", "math", "base",
    "meta", "link", "frame", "frameset", "template", "textarea", "button", "noscript",
}  # fmt: skip
BAD_URL = re.compile(r"^\s*(javascript|vbscript|data|file):", re.IGNORECASE)


class Collect(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_inert(html: str) -> None:
    parser = Collect()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag not in DANGEROUS_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, html)
            assert name in ALLOWED_ATTRS, (tag, name, html)
            if name in ("href", "src"):
                assert not BAD_URL.match(value or ""), (tag, name, value)
            if name == "class":
                assert tag == "code" and (value or "").startswith("language-"), (tag, value)


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="javascript:alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="  javascript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "<svg onload=alert(1)><circle/></svg>",
    "<iframe src=https://evil.example></iframe>",
    '<div style="background:url(javascript:alert(1))">styled</div>',
    "<style>body{display:none}</style>",
    '<form action="https://evil.example"><input name=x></form>',
    "<details open ontoggle=alert(1)><summary>s</summary></details>",
    '<base href="https://evil.example/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<p id="login" name="section">clobber</p>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<a href=x onmouseover=alert(1)>hover</a>",
    '<code class="language-js onload">x</code><p class="evil">y</p>',
    "![img](javascript:alert(1))",
    "<object data=x></object><embed src=x>",
    "<template><script>alert(1)</script></template>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_readmes_come_out_inert(text: str) -> None:
    html = render_readme(f"# Title\n\n{text}\n\nafter\n")
    assert_inert(html)
    assert "alert(1)" not in html or "<script" not in html.lower()


def test_script_content_is_dropped_not_shown_as_text() -> None:
    assert "alert" not in render_readme("<script>alert('x')</script>\n")


def test_markdown_still_renders() -> None:
    html = render_readme(
        "# Title\n\nSome *em* and **strong**, `code`, [a link](https://example.com/x).\n\n"
        "```js\nconst a = 1 < 2;\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n"
    )
    assert "<h1>Title</h1>" in html
    assert "<em>em</em>" in html and "<strong>strong</strong>" in html
    assert '<a href="https://example.com/x" rel="noopener noreferrer nofollow">a link</a>' in html
    assert '<code class="language-js">const a = 1 &lt; 2;' in html
    assert "<table>" in html and "<td>2</td>" in html
    assert "<li>one</li>" in html


def test_no_readme_is_empty_and_a_huge_one_is_cut() -> None:
    assert render_readme(None) == "" and render_readme("  \n") == ""
    html = render_readme("x" * (MAX_README + 10))
    assert "README cut" in html
    assert html.count("x") <= MAX_README + 10


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                "<script>",
                "</script>",
                "<img",
                " src=",
                "javascript:",
                "alert(1)",
                " onerror=",
                "<a",
                " href=",
                '"',
                "'",
                ">",
                "<",
                "/",
                "<svg",
                "<style>",
                "style=",
                "&#x09;",
                "[x](",
                ")",
                "![i](",
                "<iframe",
                "\n",
                "`",
                "<!--",
                "-->",
                "<math>",
                " on",
                "load=",
                "data:",
                "&lt;",
                "<p",
                "</p>",
                "<table>",
                "<noscript>",
                "=",
            ]
        )
        | st.text(max_size=8),
        max_size=40,
    )
)
def test_any_mix_of_hostile_pieces_comes_out_inert(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert_inert(render_readme(text))
    assert_inert(sanitize_html(text))


def test_a_text_is_rendered_once_per_worker() -> None:
    text = "# cached\n\nonce " + "x" * 100
    first = render_readme(text)
    assert render_readme(text) is first


GEVENT_PROBE = """
from gevent import monkey
monkey.patch_all()
import gevent
from r13core.cooperative import patched
from r13core.readme import render_readme

assert patched()
ticks = []
def ticker():
    while True:
        ticks.append(1)
        gevent.sleep(0.001)
g = gevent.spawn(ticker)
gevent.sleep(0)
before = len(ticks)
part = "## part {}\\n\\nsome *text* and `code` [l](https://e.x/{})\\n\\n"
text = "".join(part.format(i, i) for i in range(3000))
html = render_readme(text)
during = len(ticks) - before
g.kill()
assert "<h2>part 0</h2>" in html
print(during)
"""


def test_rendering_under_gevent_leaves_the_hub_running() -> None:
    out = subprocess.run(
        [sys.executable, "-c", GEVENT_PROBE], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    # Other greenlets ran while the README was rendered (in the thread pool, not the hub).
    assert int(out.stdout.strip()) > 0
