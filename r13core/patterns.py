"""Package patterns (``@mycompany/*``, ``@*/*``, ``left-pad``, ``**``) matched in linear time.

Keys, npm tokens and access rules limit themselves to packages with globs:
``*`` matches within one segment (never ``/``), ``**`` matches anything. A
regex with nested wildcards (``.*a.*a.*a...``) backtracks exponentially on a
name that almost matches, and any user can set a token's pattern, so patterns
are never turned into regexes. Instead a pattern compiles to a small
non-deterministic automaton whose set of live states is one integer used as a
bit set (the shift-and technique): each character of the name costs a fixed
handful of integer operations, whatever the pattern, so matching a name of
``n`` characters takes exactly ``n`` steps and no backtracking exists to
exploit. :meth:`Pattern.match_steps` reports the steps, which tests assert.

Patterns are also validated where they are set (:func:`parse_pattern`):
at most :data:`MAX_PATTERN_LENGTH` characters of ``A-Za-z0-9._-*/@``, at most
:data:`MAX_WILDCARDS` wildcards, ``@`` only first, at most one ``/`` (a
package name has at most two segments); and a key carries at most
:data:`MAX_PATTERNS` of them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from r13core.errors import InvalidValue

MAX_PATTERN_LENGTH: Final = 214
MAX_WILDCARDS: Final = 8
MAX_PATTERNS: Final = 32
_ALLOWED: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*/@")
_STAR: Final = "*"  # any run of characters but "/"
_GLOBSTAR: Final = "**"  # any run of characters


class Pattern:
    """A compiled glob. Build with :func:`compile_pattern` (cached) or :func:`parse_pattern`."""

    __slots__ = ("_accept", "_literal", "_loop_any", "_loop_star", "_prefix", "_skip", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        # The usual shapes ("left-pad", "@acme/*", "@acme/**") are a plain comparison.
        self._prefix: tuple[str, str] | None = None
        if "*" not in text:
            self._prefix = (text, "=")
        elif text.count("*") == 1 and text.endswith("*"):
            self._prefix = (text[:-1], "*")
        elif text.count("*") == 2 and text.endswith("**"):
            self._prefix = (text[:-2], "**")
        tokens: list[str] = []
        i = 0
        while i < len(text):
            if text.startswith("**", i):
                token, i = _GLOBSTAR, i + 2
            elif text[i] == "*":
                token, i = _STAR, i + 1
            else:
                token, i = text[i], i + 1
            # Adjacent wildcards are one wildcard (the wider of the two): this keeps
            # the epsilon closure below a single shift.
            if token in (_STAR, _GLOBSTAR) and tokens and tokens[-1] in (_STAR, _GLOBSTAR):
                if token == _GLOBSTAR:
                    tokens[-1] = _GLOBSTAR
                continue
            tokens.append(token)
        # State i = "tokens[:i] matched"; bit i of an int stands for state i.
        literal: dict[str, int] = {}
        star = anything = 0
        for i, token in enumerate(tokens):
            if token == _STAR:
                star |= 1 << i
            elif token == _GLOBSTAR:
                anything |= 1 << i
            else:
                literal[token] = literal.get(token, 0) | (1 << i)
        self._literal = literal
        self._loop_star = star
        self._loop_any = anything
        self._skip = star | anything  # a wildcard may match nothing: state i -> i + 1
        self._accept = 1 << len(tokens)

    def _close(self, states: int) -> int:
        return states | ((states & self._skip) << 1)

    def match_steps(self, name: str) -> tuple[bool, int]:
        """(whether ``name`` matches, how many steps that took: at most ``len(name)``)."""
        literal = self._literal
        loop_star, loop_any = self._loop_star, self._loop_any
        skip = self._skip
        states = 1 | ((1 & skip) << 1)
        steps = 0
        for char in name:
            steps += 1
            moved = (states & literal.get(char, 0)) << 1
            stay = states & (loop_any if char == "/" else loop_star | loop_any)
            states = moved | stay
            states |= (states & skip) << 1
            if not states:
                return False, steps
        return bool(states & self._accept), steps

    def match(self, name: str) -> bool:
        """Whether the whole of ``name`` matches the pattern."""
        if self._prefix is not None:
            prefix, kind = self._prefix
            if kind == "=":
                return name == prefix
            if not name.startswith(prefix):
                return False
            return kind == "**" or "/" not in name[len(prefix) :]
        return self.match_steps(name)[0]

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


@functools.lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    """The compiled form of ``text`` (cached; matching is linear for any text)."""
    return Pattern(text)


def parse_pattern(value: object, where: str = "package pattern") -> str:
    """``value`` if it is a valid pattern (see the module docstring); InvalidValue says why."""
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{where}: {value!r} is not a package pattern")
    if len(value) > MAX_PATTERN_LENGTH:
        raise InvalidValue(f"{where}: longer than {MAX_PATTERN_LENGTH} characters")
    bad = sorted(set(value) - _ALLOWED)
    if bad:
        raise InvalidValue(
            f"{where}: {value!r} may hold only letters, digits, '.', '_', '-', '*', '/', '@' "
            f"(not {''.join(bad)!r})"
        )
    if "@" in value[1:]:
        raise InvalidValue(f"{where}: {value!r}: '@' only starts a scope")
    if value.count("/") > 1:
        raise InvalidValue(f"{where}: {value!r}: a package name has at most one '/'")
    wildcards = value.replace("**", "*").count("*")
    if wildcards > MAX_WILDCARDS:
        raise InvalidValue(f"{where}: {value!r} has more than {MAX_WILDCARDS} wildcards")
    return value


def parse_patterns(values: Iterable[object], where: str = "packages") -> tuple[str, ...]:
    """Validated patterns (at most :data:`MAX_PATTERNS`, duplicates dropped)."""
    if isinstance(values, str | bytes):
        raise InvalidValue(f"{where}: a list of package patterns")
    out: list[str] = []
    for value in values:
        pattern = parse_pattern(value, where)
        if pattern not in out:
            out.append(pattern)
        if len(out) > MAX_PATTERNS:
            raise InvalidValue(f"{where}: more than {MAX_PATTERNS} package patterns")
    return tuple(out)


def matches_any(patterns: Iterable[str], package: str) -> bool:
    """Whether ``package`` matches one of ``patterns``."""
    return any(compile_pattern(p).match(package) for p in patterns)
