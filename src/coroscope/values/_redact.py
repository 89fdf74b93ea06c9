"""Redaction: secrets by name (locals, dict keys, fields) and by shape (inside any string).

Names are normalised (lower case; ``_``, ``-``, ``.`` and spaces removed) and compared
with a deny-list.  Entries of four characters or more match anywhere in the normalised
name (``db_Password_2`` is denied by ``password``); entries of three characters or fewer
(``ssn``, ``pin``, ``otp`` ...) match only the whole name or one whole word of it
(``user_ssn``, ``userSSN``, ``ssn2``), because as substrings they would hide harmless
names such as ``class_name`` or ``mapping``.

Strings are scanned for secret *shapes* wherever they appear (values, dict keys, reprs):
``Bearer``/``Basic`` credentials, URL user-info passwords, JWTs (and any base64 JSON
segment), PEM private-key blocks, AWS access key ids, ``password=...``-style pairs and
``Authorization:``/``Cookie:`` header lines.  Scanning has three stages so that ordinary
strings pay for substring tests only: a separator or anchor on the text, a keyword on
its lower-cased copy, and only then the regex.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable

from .._denylist import DEFAULT_DENY, normalise

__all__ = [
    "DEFAULT_DENY",
    "REDACTED",
    "DenyList",
    "NameFilter",
    "normalise",
    "patterns",
    "scrub",
    "scrub_cut",
]

REDACTED = "[redacted]"

# Longest name checked character by character; longer names are denied outright (their
# value is redacted), so that a huge dict key costs nothing and hides nothing.
MAX_NAME = 256

_WORD_MAX = 3


# Words of an identifier: camelCase humps, ACRONYMS, digit runs with their unit (2FA).
_WORDS = re.compile(r"[0-9]+[A-Za-z]*|[A-Z]+(?![a-z])|[A-Z]?[a-z]+")


class DenyList:
    """A compiled deny-list: ``deny(name)`` says whether a value under ``name`` is hidden."""

    __slots__ = ("_pattern", "_search", "_words", "entries")

    def __init__(self, entries: Iterable[str] = DEFAULT_DENY) -> None:
        substrings: set[str] = set()
        words: set[str] = set()
        for entry in entries:
            key = normalise(entry)
            if not key:
                continue
            (words if len(key) <= _WORD_MAX else substrings).add(key)
        self.entries: tuple[str, ...] = tuple(sorted(substrings | words))
        self._pattern = "|".join(re.escape(s) for s in sorted(substrings, key=len, reverse=True))
        self._search: Callable[[str], object] | None = None  # compiled on first use
        self._words = frozenset(words)

    def compile(self) -> Callable[[str], object] | None:
        """The substring search, compiled now if it was not yet (``None``: no substrings)."""
        search = self._search
        if search is None and self._pattern:
            search = self._search = re.compile(self._pattern).search
        return search

    def __call__(self, name: str) -> bool:
        """Whether ``name`` (a local, key, field or attribute name) is deny-listed."""
        if len(name) > MAX_NAME:
            return True
        key = normalise(name)
        search = self._search or self.compile()
        if search is not None and search(key) is not None:
            return True
        words = self._words
        if not words:
            return False
        if key in words:
            return True
        return any(word.lower() in words for word in _WORDS.findall(name))


class NameFilter:
    """Exact names and ``fnmatch`` globs (``*``, ``?``, ``[...]``), case-sensitive."""

    __slots__ = ("_exact", "_glob")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        exact: set[str] = set()
        globs: list[str] = []
        for pattern in patterns:
            if any(ch in pattern for ch in "*?["):
                globs.append(fnmatch.translate(pattern))
            elif pattern:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._glob = re.compile("|".join(globs)).match if globs else None

    def __bool__(self) -> bool:
        return bool(self._exact) or self._glob is not None

    def __call__(self, name: str) -> bool:
        """Whether ``name`` is listed."""
        if name in self._exact:
            return True
        return self._glob is not None and self._glob(name) is not None


# -- secret shapes --------------------------------------------------------------------

# Strings shorter than this cannot hold a shape worth redacting ("Bearer x" is 8).
MIN_SCAN = 8

_VALUE = r"(?:\"[^\"]*\"?|'[^']*'?|[^\s\"'&,;]+)"  # quoted up to its quote, or a bare word
_SEP = r"[a-z0-9_-]*[\"']?[ \t]*[:=][ \t]*"  # name suffix, closing quote, ":" or "="
_HEADER_VALUE = r"(?:\"[^\"\r\n]*\"?|'[^'\r\n]*'?|[^\r\n]+)"  # to the end of the line


def _shapes() -> str:
    r"""One alternation, run on the lower-cased text.

    Every alternative starts with a literal character, so the regex engine skips
    positions with a first-character set instead of trying each alternative everywhere;
    an ordinary string costs one fast scan.  Group ``s<N>`` is the secret (what precedes
    it in the match is kept); a match ending in group ``w<N>`` is a secret as a whole.
    Patterns that may reach the end of the text (``\Z``) also catch a secret cut short
    by truncation.
    """
    alternatives = [
        # Authorization / Cookie header lines (Proxy-, Set- too): the whole value.
        rf"authorization[\"']?[ \t]*[:=][ \t]*(?P<s1>{_HEADER_VALUE})",
        rf"cookie[\"']?[ \t]*[:=][ \t]*(?P<s2>{_HEADER_VALUE})",
        # HTTP credentials.
        r"bearer[ \t]+(?P<s5>[^\s\"',;]+)",
        r"basic[ \t]+(?P<s6>[^\s\"',;]+)",
        # scheme://user:password@host; the password runs to the last "@".
        r"://[^\s/?#:]*:(?P<s7>[^\s]*)(?=@)",
        # JWTs and any base64url JSON segment ("eyJ" is base64 for '{"').
        r"eyj(?<![a-z0-9]eyj)[a-z0-9_-]{4,}(?:\.[a-z0-9_-]*){0,2}(?P<w8>)",
        # PEM private keys, up to their END line or the end of the text.
        r"-----begin[a-z0-9 ]*private key[a-z ]*-----"
        r"(?P<s9>[\s\S]*?(?:-----end[a-z0-9 ]*private key[a-z ]*-----|\Z))",
        # AWS access key ids.
        r"akia(?<![a-z0-9]akia)[a-z0-9]{16}(?![a-z0-9])(?P<w10>)",
        r"asia(?<![a-z0-9]asia)[a-z0-9]{16}(?![a-z0-9])(?P<w11>)",
    ]
    # password=..., "api_key": "...", secret: ...
    names = (
        r"passw(?:or)?d",
        "passphrase",
        "pwd",
        "secret",
        "token",
        r"api[_-]?key",
        r"access[_-]?key",
        r"private[_-]?key",
        r"client[_-]?secret",
    )
    for n, name in enumerate(names, start=12):
        alternatives.append(rf"{name}{_SEP}(?P<s{n}>{_VALUE})")
    return "|".join(alternatives)


# Secrets cut by truncation, at the very end of the kept text: a URL password with no
# "@" left (digits then "/" or the end are a port, not a password) or a partial AWS key
# id.  The other shapes' patterns already match a cut secret.
_DANGLING_PATTERN = (
    r"(://[^\s/?#:]*:)(?![0-9]+(?:[/?#]|\Z))[^\s@]*\Z|(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]*\Z"
)


class _Patterns:
    """The shape patterns, compiled on first use (compiling them takes about 10 ms, which
    a process that never renders a secret-looking string should not pay at start-up)."""

    __slots__ = ("dangling", "shapes", "shapes_i")

    def __init__(self) -> None:
        source = _shapes()
        self.shapes = re.compile(source)
        # Case-insensitive twin for the rare text whose lower-casing changes its length.
        self.shapes_i = re.compile(source, re.IGNORECASE)
        self.dangling = re.compile(_DANGLING_PATTERN)


_compiled: _Patterns | None = None


def patterns() -> _Patterns:
    """The compiled shape patterns (compiled now if they were not yet)."""
    global _compiled
    found = _compiled
    if found is None:
        found = _compiled = _Patterns()
    return found


def _redact_matches(text: str, matches: Iterable[re.Match[str]]) -> str:
    parts: list[str] = []
    pos = 0
    for match in matches:
        group = match.lastgroup
        start = match.start()
        if group is not None and group[0] == "s":
            start = match.start(group)
        parts.append(text[pos:start])
        parts.append(REDACTED)
        pos = match.end()
    parts.append(text[pos:])
    return "".join(parts)


def scrub(text: str) -> str:
    """Redact secret-shaped parts of ``text``; returns ``text`` itself when there are none.

    Every shape needs a separator (space, tab, ``:`` or ``=``), a JWT's ``eyJ`` or an AWS
    id's ``AKIA``/``ASIA``, and one of a few keywords; a string lacking either (most
    identifiers, paths, ids, URLs, messages) costs only ``in`` tests, far cheaper than the
    regex.  Strings shorter than ``MIN_SCAN`` are returned at once.
    """
    if len(text) < MIN_SCAN or (
        " " not in text
        and ":" not in text
        and "=" not in text
        and "\t" not in text
        and "eyJ" not in text
        and "AKIA" not in text
        and "ASIA" not in text
    ):
        return text
    low = text.lower()
    # Every shape also needs one of these words (C substring searches, much cheaper than
    # the regex, which tries each position where a shape's first letter occurs).
    if not (
        ("@" in low and "://" in low)
        or "key" in low
        or "token" in low
        or "pass" in low
        or "secret" in low
        or "bearer" in low
        or "basic" in low
        or "authorization" in low
        or "cookie" in low
        or "pwd" in low
        or "eyj" in low
        or "-----begin" in low
        or "akia" in low
        or "asia" in low
    ):
        return text
    compiled = patterns()
    if len(low) == len(text):
        found = compiled.shapes.search(low)
        if found is None:
            return text
        return _redact_matches(text, compiled.shapes.finditer(low, found.start()))
    found = compiled.shapes_i.search(text)
    if found is None:
        return text
    return _redact_matches(text, compiled.shapes_i.finditer(text, found.start()))


def _keep_url_user(match: re.Match[str]) -> str:
    return (match.group(1) or "") + REDACTED


def scrub_cut(head: str) -> str:
    """Redact ``head``, the kept start of a longer string, including a secret cut at its end."""
    head = scrub(head)
    if "://" in head or "AKIA" in head or "ASIA" in head:
        head = patterns().dangling.sub(_keep_url_user, head)
    return head
