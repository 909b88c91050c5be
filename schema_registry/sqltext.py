"""A small SQLite tokenizer: enough to compare SQL text and to cut column definitions out.

SQLite itself parses every schema (see registry.compile_schema); this module only has to
make cosmetic differences (whitespace, keyword case, identifier quoting, comments) vanish,
and find the text of one column definition so ADD COLUMN can repeat it verbatim.
"""

from __future__ import annotations

import re
import sqlite3
import string
from collections.abc import Iterator
from itertools import pairwise
from typing import Final

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^']|'')*')
  | (?P<blob>[xX]'[0-9a-fA-F]*')
  | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)
  | (?P<word>[^\W\d][\w$]*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_BARE: Final = re.compile(r"[a-z_][a-z0-9_$]*\Z")
_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(name: str) -> str:
    """An identifier's case-folded form, as SQLite compares names: ASCII letters only.

    SQLite keeps "É" and "é" apart (sqlite3StrICmp folds ASCII only), so str.lower()
    would merge two objects SQLite treats as different.
    """
    # str.lower() is ten times faster than translate and means the same on ASCII text.
    return name.lower() if name.isascii() else name.translate(_ASCII_LOWER)


def tokens(sql: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, text) for each token, without whitespace and comments."""
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "op"
        if kind not in ("space", "comment"):
            yield kind, match.group()


def unquote(text: str) -> str:
    """The name an identifier token stands for: `"a""b"` -> `a"b`, `[x]` -> `x`."""
    if text[:1] == '"' and text[-1:] == '"':
        return text[1:-1].replace('""', '"')
    if text[:1] == "`" and text[-1:] == "`":
        return text[1:-1].replace("``", "`")
    if text[:1] == "[" and text[-1:] == "]":
        return text[1:-1]
    return text


def quote(name: str) -> str:
    """An identifier as SQL, always double-quoted so keywords and odd names are safe."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string as an SQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _normal_token(kind: str, text: str) -> str:
    if kind in ("word", "quoted"):
        # SQLite folds ASCII identifier and keyword case; quoting is cosmetic.
        name = fold(unquote(text) if kind == "quoted" else text)
        return name if _BARE.match(name) else quote(name)
    if kind == "blob":
        return text.lower()
    return text


def normalize(sql: str) -> str:
    """Canonical text for comparison: no comments, one space, folded case and quoting."""
    return " ".join(_normal_token(kind, text) for kind, text in tokens(sql)).rstrip(" ;")


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements, respecting strings and trigger bodies."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if any(True for _ in tokens(pending.rstrip(";"))):
                statements.append(pending.strip())
            pending = ""
    if any(True for _ in tokens(pending.rstrip(";"))):
        statements.append(pending.strip().rstrip(";").strip())
    return statements


def table_body_parts(create_table_sql: str) -> list[str]:
    """The comma-separated parts inside CREATE TABLE's outer parentheses, as written."""
    depth = 0
    start = -1
    parts: list[str] = []
    for match in _TOKEN.finditer(create_table_sql):
        text = match.group()
        if match.lastgroup != "op":
            continue
        if text == "(":
            depth += 1
            if depth == 1:
                start = match.end()
        elif text == ")":
            depth -= 1
            if depth == 0:
                parts.append(create_table_sql[start : match.start()].strip())
                break
        elif text == "," and depth == 1:
            parts.append(create_table_sql[start : match.start()].strip())
            start = match.end()
    return parts


_TABLE_CONSTRAINT: Final = frozenset({"constraint", "primary", "unique", "check", "foreign"})


def _top_level(sql: str) -> Iterator[tuple[str, str]]:
    """(kind, text) of the tokens outside parentheses, each parenthesised group as one
    ("group", inner SQL) item."""
    depth = 0
    start = 0
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup or "op", match.group()
        if kind == "op" and text == "(":
            depth += 1
            start = match.end() if depth == 1 else start
        elif kind == "op" and text == ")":
            depth -= 1
            if depth == 0:
                yield "group", sql[start : match.start()]
        elif depth == 0 and kind not in ("space", "comment"):
            yield kind, text


def clause(definition: str, keyword: str) -> str | None:
    """What follows a keyword outside parentheses, normalised: the collation after COLLATE,
    a generated column's expression after AS. None when the keyword is not there."""
    items = list(_top_level(definition))
    for (kind, text), (_, following) in pairwise(items):
        if kind == "word" and text.lower() == keyword:
            return normalize(following)
    return None


def table_checks(create_table_sql: str) -> tuple[str, ...]:
    """Every CHECK expression of a table, normalised and sorted; written on a column or as a
    table constraint alike, since where it is written does not change what it checks."""
    return tuple(
        sorted(check for part in table_body_parts(create_table_sql) for check in checks(part))
    )


def checks(part: str) -> list[str]:
    """The normalised CHECK expressions of one column definition or table constraint."""
    items = list(_top_level(part))
    return [
        normalize(following)
        for (kind, text), (following_kind, following) in pairwise(items)
        if kind == "word" and text.lower() == "check" and following_kind == "group"
    ]


def column_definitions(create_table_sql: str) -> dict[str, str]:
    """Map each column's folded name (see fold) to its definition text in CREATE TABLE."""
    found: dict[str, str] = {}
    for part in table_body_parts(create_table_sql):
        first = next(tokens(part), None)
        if first is None:
            continue
        kind, text = first
        if kind == "word" and text.lower() in _TABLE_CONSTRAINT:
            continue
        found[fold(unquote(text))] = part
    return found


def has_word(sql: str, *words: str) -> bool:
    """Whether the SQL holds the keyword sequence (case-insensitive, outside strings)."""
    wanted = [w.lower() for w in words]
    seen = [text.lower() for kind, text in tokens(sql) if kind == "word"]
    n = len(wanted)
    return any(seen[i : i + n] == wanted for i in range(len(seen) - n + 1))
