"""Go text/template, the subset Ollama chat templates use, for checking Modelfile TEMPLATEs in tests.

No Python package renders Go templates (PyPI's one wrapper of Go's engine ships no wheel for this
platform), so this follows Go's documented semantics for: text and actions with `{{-`/`-}}` trim
markers, comments, `if`/`else if`/`else`/`end`, `range` over a list (with `$i, $v :=`), variable
declaration `$x := ...` and assignment `$x = ...`, fields (`.Role`, `$.System`, `$v.Content`),
string/number/bool literals, parenthesised pipelines and the functions eq, ne, and, or, not, len,
index, slice. Anything else raises, so a template it cannot read fails the test instead of being
rendered wrongly. Its output was compared with Go 1.19's text/template on every family's template.
"""

from __future__ import annotations

import re
from typing import Any

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(
    r'\s*("(?:[^"\\]|\\.)*"|\(|\)|:=|=|,|\$?[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*|\$(?:\.[A-Za-z_]\w*)*|\.(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?|-?\d+)'
)


class GoTemplateError(Exception):
    pass


def render(template: str, data: dict[str, Any]) -> str:
    nodes, rest = _parse(_lex(template), 0, ())
    if rest != len(_lex(template)):
        raise GoTemplateError("unexpected {{end}} or {{else}}")
    out: list[str] = []
    _run(nodes, [{"$": data}], data, out)
    return "".join(out)


def _lex(template: str) -> list[tuple[str, str]]:
    """[("text", ...), ("action", ...)] with trim markers applied to the neighbouring text."""
    items: list[tuple[str, str]] = []
    position = 0
    for match in _ACTION.finditer(template):
        text = template[position : match.start()]
        if match.group(1):
            text = text.rstrip(" \t\r\n")
        items.append(("text", text))
        items.append(("action", match.group(2).strip()))
        position = match.end()
        if match.group(3):
            following = template[position:]
            position += len(following) - len(following.lstrip(" \t\r\n"))
    items.append(("text", template[position:]))
    return [item for item in items if item != ("text", "") and not item[1].startswith("/*")]


def _parse(items, start: int, stops: tuple[str, ...]):
    """Nodes up to one of `stops` (an "end"/"else" keyword); returns (nodes, index of the stop)."""
    nodes, index = [], start
    while index < len(items):
        kind, value = items[index]
        word = value.split(" ", 1)[0] if kind == "action" else None
        if word in ("end", "else"):
            if word not in stops and not (word == "else" and "else" in stops):
                raise GoTemplateError(f"unexpected {{{{{value}}}}}")
            return nodes, index
        if word == "if":
            node, index = _parse_if(items, index, value[3:])
            nodes.append(node)
            continue
        if word == "range":
            body, index = _parse(items, index + 1, ("end",))
            nodes.append(("range", value[6:].strip(), body))
        else:
            nodes.append((kind, value))
        index += 1
    if stops:
        raise GoTemplateError("missing {{end}}")
    return nodes, index


def _parse_if(items, index: int, condition: str):
    branches = []
    while True:
        body, index = _parse(items, index + 1, ("end", "else"))
        branches.append((condition, body))
        stop = items[index][1]
        if stop == "end":
            return ("if", branches), index + 1
        if stop.startswith("else if "):
            condition = stop[len("else if ") :]
        elif stop == "else":
            body, index = _parse(items, index + 1, ("end",))
            branches.append((None, body))
            return ("if", branches), index + 1
        else:
            raise GoTemplateError(f"unsupported {{{{{stop}}}}}")


def _run(nodes, scopes: list[dict], dot: Any, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "action":
            value = _action(node[1], scopes, dot)
            if value is not None:
                out.append(_print(value))
        elif node[0] == "if":
            for condition, body in node[1]:
                if condition is None or _truth(_pipeline(_tokens(condition), scopes, dot)):
                    _run(body, [*scopes, {}], dot, out)
                    break
        else:
            _range(node[1], node[2], scopes, dot, out)


def _range(header: str, body, scopes, dot, out) -> None:
    match = re.fullmatch(r"(?:(\$\w+)\s*(?:,\s*(\$\w+))?\s*:=\s*)?(.+)", header, re.DOTALL)
    first, second, pipeline = match.groups()
    items = _pipeline(_tokens(pipeline), scopes, dot) or []
    if not isinstance(items, list):
        raise GoTemplateError(f"range over {type(items).__name__}")
    for position, item in enumerate(items):
        names = {}
        if first and second:
            names = {first: position, second: item}
        elif first:
            names = {first: item}
        _run(body, [*scopes, names], item, out)


def _action(text: str, scopes, dot):
    """Output of an action, or None for declarations and assignments (which print nothing)."""
    tokens = _tokens(text)
    if len(tokens) > 2 and tokens[0].startswith("$") and tokens[1] in (":=", "="):
        value = _pipeline(tokens[2:], scopes, dot)
        if tokens[1] == ":=":
            scopes[-1][tokens[0]] = value
        else:
            owner = next((scope for scope in reversed(scopes) if tokens[0] in scope), None)
            if owner is None:
                raise GoTemplateError(f"undefined variable {tokens[0]}")
            owner[tokens[0]] = value
        return None
    return _pipeline(tokens, scopes, dot)


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise GoTemplateError(f"cannot read {text[position:]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


def _pipeline(tokens: list[str], scopes, dot):
    if "|" in tokens:
        raise GoTemplateError("pipes are not supported")
    args, index = [], 0
    while index < len(tokens):
        token = tokens[index]
        if token == "(":
            depth, end = 1, index + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(tokens[end], 0)
                end += 1
            args.append(("value", _pipeline(tokens[index + 1 : end - 1], scopes, dot)))
            index = end
            continue
        args.append(("word", token))
        index += 1
    head_kind, head = args[0]
    if head_kind == "word" and head in _FUNCTIONS:
        return _FUNCTIONS[head](*[_operand(arg, scopes, dot) for arg in args[1:]])
    if len(args) != 1:
        raise GoTemplateError(f"unsupported pipeline {' '.join(tokens)}")
    return _operand(args[0], scopes, dot)


def _operand(arg, scopes, dot):
    kind, token = arg
    if kind == "value":
        return token
    if token.startswith('"'):
        return bytes(token[1:-1], "utf-8").decode("unicode_escape")
    if re.fullmatch(r"-?\d+", token):
        return int(token)
    if token in ("true", "false"):
        return token == "true"
    if token.startswith("$"):
        name, *fields = token.split(".")
        owner = next((scope for scope in reversed(scopes) if name in scope), None)
        if owner is None:
            raise GoTemplateError(f"undefined variable {name}")
        return _fields(owner[name], fields)
    if token.startswith("."):
        return _fields(dot, [f for f in token.split(".") if f])
    raise GoTemplateError(f"unknown function or value {token!r}")


def _fields(value, names: list[str]):
    for name in names:
        if not isinstance(value, dict) or name not in value:
            raise GoTemplateError(f"no field {name}")
        value = value[name]
    return value


def _truth(value) -> bool:
    return value not in (None, False, 0, "") and value != [] and value != {}


def _print(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<no value>"
    return str(value)


def _and(*values):
    for value in values:
        if not _truth(value):
            return value
    return values[-1]


def _or(*values):
    for value in values:
        if _truth(value):
            return value
    return values[-1]


def _slice(value, *bounds):
    return value[bounds[0] : bounds[1]] if len(bounds) == 2 else value[bounds[0] :] if bounds else value


_FUNCTIONS = {
    "eq": lambda a, *others: any(a == other for other in others),
    "ne": lambda a, b: a != b,
    "and": _and,
    "or": _or,
    "not": lambda value: not _truth(value),
    "len": len,
    "index": lambda value, *keys: _fields(value, []) if not keys else value[keys[0]],
    "slice": _slice,
}
