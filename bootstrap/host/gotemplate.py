"""A small Go text/template: enough for the kubeadm templates sealos users wrote.

sealos rendered `--kubeadm-config` files with Go's text/template, so those files must render
here to the same text: `{{.Field}}`, `{{.}}`, `{{range .List -}} ... {{end -}}`,
`{{if}}/{{else if}}/{{else}}`, `{{with}}`, variables (`$x := ...`, `$`), comments, pipes,
parentheses, the trim markers `{{- ` and ` -}}`, and Go's built-in functions
(and, or, not, eq, ne, lt, le, gt, ge, len, index, print, printf, println).

One deliberate difference: a field the data does not have is an error naming the line,
where Go would print `<no value>` into the YAML and leave kubeadm to fail later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_TRIM = " \t\r\n"
# Deepest nesting of {{if}}/{{range}}/{{with}} and of parentheses: far beyond any real
# template, and well within Python's own recursion limit.
MAX_DEPTH = 100


class TemplateError(Exception):
    """The template cannot be parsed or rendered; `line` is 1-based in the template text."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


# ---------------------------------------------------------------- lexing of the text


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    body: str
    line: int


def _split(source: str) -> list[_Text | _Action]:
    """Text and actions, with the trim markers already applied to the text around them."""
    parts: list[_Text | _Action] = []
    pos = 0
    trim_next = False
    while True:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        if trim_next:
            text = text.lstrip(_TRIM)
        if start < 0:
            parts.append(_Text(text))
            return parts
        line = source.count("\n", 0, start) + 1
        inner = start + 2
        trim_left = source.startswith("-", inner) and source[inner + 1 : inner + 2] in tuple(_TRIM)
        if trim_left:
            text = text.rstrip(_TRIM)
            inner += 2
        parts.append(_Text(text))
        end = _action_end(source, inner, line)
        body = source[inner:end]
        trim_next = False
        if len(body) >= 2 and body[-1] == "-" and body[-2] in _TRIM:
            trim_next = True
            body = body[:-2]
        parts.append(_Action(body.strip(_TRIM), line))
        pos = end + 2


def _action_end(source: str, pos: int, line: int) -> int:
    """Index of the `}}` closing the action that starts at `pos`, skipping quoted text."""
    stripped = source[pos:].lstrip(_TRIM)
    if stripped.startswith("/*"):
        close = source.find("*/", pos)
        if close < 0:
            raise TemplateError(line, "unclosed comment")
        end = source.find("}}", close)
        if end < 0:
            raise TemplateError(line, "unclosed action")
        return end
    i = pos
    while i < len(source):
        ch = source[i]
        if ch in "\"'`":
            close = source.find(ch, i + 1) if ch == "`" else _quote_end(source, i)
            if close < 0:
                raise TemplateError(line, "unterminated quoted string")
            i = close + 1
            continue
        if source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError(line, "unclosed action: missing }}")


def _quote_end(source: str, start: int) -> int:
    quote = source[start]
    i = start + 1
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source[i] == quote:
            return i
        if source[i] == "\n":
            return -1
        i += 1
    return -1


# ---------------------------------------------------------------- lexing of an action

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    text: str


def _lex(body: str, line: int) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if not match or match.lastgroup is None:
            raise TemplateError(line, f"unexpected {body[pos]!r} in action {{{{{body}}}}}")
        if match.lastgroup != "space":
            tokens.append(_Tok(match.lastgroup, match.group()))
        pos = match.end()
    return tokens


# ---------------------------------------------------------------- syntax tree


@dataclass
class _Field:
    var: str | None  # "$x", "$" or None for the dot
    names: tuple[str, ...]


@dataclass
class _Literal:
    value: Any


@dataclass
class _Func:
    name: str


@dataclass
class _Pipe:
    decl: list[str]
    assign: bool
    cmds: list[list[Any]]  # each command: operands (_Field, _Literal, _Func, _Pipe)
    line: int


@dataclass
class _Out:
    pipe: _Pipe


@dataclass
class _If:
    cond: _Pipe
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _Range:
    pipe: _Pipe
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


@dataclass
class _With:
    pipe: _Pipe
    body: list[Any]
    orelse: list[Any] = field(default_factory=list)


_KEYWORDS = {"if", "else", "end", "range", "with"}
_UNSUPPORTED = {"define", "template", "block", "break", "continue"}


class _Parser:
    def __init__(self, parts: list[_Text | _Action]) -> None:
        self.parts = parts
        self.i = 0
        self.depth = 0

    def parse(self) -> list[Any]:
        body, stop, line = self.nodes()
        if stop is not None:
            raise TemplateError(line, f"unexpected {{{{{stop}}}}}")
        return body

    def nodes(self) -> tuple[list[Any], str | None, int]:
        """Nodes up to an {{end}} / {{else ...}}; returns which one stopped us (or None at EOF)."""
        out: list[Any] = []
        while self.i < len(self.parts):
            part = self.parts[self.i]
            self.i += 1
            if isinstance(part, _Text):
                if part.text:
                    out.append(part.text)
                continue
            body, line = part.body, part.line
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError(line, "comment must end with */ right before }}")
                continue
            tokens = _lex(body, line)
            if not tokens:
                raise TemplateError(line, "empty action {{}}")
            head = tokens[0]
            if head.kind == "ident" and head.text in _UNSUPPORTED:
                raise TemplateError(line, f"{{{{{head.text}}}}} is not supported here")
            if head.kind == "ident" and head.text == "end":
                if len(tokens) > 1:
                    raise TemplateError(line, "unexpected words after end")
                return out, "end", line
            if head.kind == "ident" and head.text == "else":
                return out, body, line
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                out.append(self.control(head.text, tokens[1:], line))
                continue
            out.append(_Out(_pipe(tokens, line, declare_ok=True)))
        return out, None, 0

    def control(self, word: str, tokens: list[_Tok], line: int) -> Any:
        if not tokens:
            raise TemplateError(line, f"missing value for {word}")
        if self.depth >= MAX_DEPTH:
            raise TemplateError(line, f"more than {MAX_DEPTH} nested if, range or with")
        self.depth += 1
        try:
            return self._control(word, tokens, line)
        finally:
            self.depth -= 1

    def _control(self, word: str, tokens: list[_Tok], line: int) -> Any:
        pipe = _pipe(tokens, line, declare_ok=True, range_vars=word == "range")
        body, stop, stop_line = self.nodes()
        orelse: list[Any] = []
        if stop is None:
            raise TemplateError(line, f"{{{{{word}}}}} has no matching {{{{end}}}}")
        if stop != "end":
            rest = _lex(stop, stop_line)[1:]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with"):
                if rest[0].text != word:
                    raise TemplateError(stop_line, f"else {rest[0].text} inside {word}")
                orelse = [self.control(word, rest[1:], stop_line)]  # consumes the shared end
            elif rest:
                raise TemplateError(stop_line, "unexpected words after else")
            else:
                orelse, stop2, _ = self.nodes()
                if stop2 != "end":
                    raise TemplateError(line, f"{{{{{word}}}}} has no matching {{{{end}}}}")
        if word == "if":
            return _If(pipe, body, orelse)
        if word == "range":
            return _Range(pipe, body, orelse)
        return _With(pipe, body, orelse)


def _pipe(
    tokens: list[_Tok], line: int, *, declare_ok: bool, range_vars: bool = False, depth: int = 0
) -> _Pipe:
    decl: list[str] = []
    assign = False
    rest = tokens
    # `$x :=`, `$x =`, or in range `$i, $v :=`
    if declare_ok and len(tokens) >= 2 and tokens[0].kind == "var":
        if tokens[1].kind in ("declare", "assign"):
            decl, assign, rest = [tokens[0].text], tokens[1].kind == "assign", tokens[2:]
        elif (
            range_vars
            and len(tokens) >= 4
            and tokens[1].kind == "comma"
            and tokens[2].kind == "var"
            and tokens[3].kind in ("declare", "assign")
        ):
            decl, assign, rest = (
                [tokens[0].text, tokens[2].text],
                tokens[3].kind == "assign",
                tokens[4:],
            )
    for name in decl:
        if "." in name:
            raise TemplateError(line, f"cannot declare {name}")
    cmds: list[list[Any]] = [[]]
    pos = 0
    while pos < len(rest):
        tok = rest[pos]
        if tok.kind == "pipe":
            if not cmds[-1]:
                raise TemplateError(line, "missing command before |")
            cmds.append([])
            pos += 1
            continue
        operand, pos = _operand(rest, pos, line, depth)
        cmds[-1].append(operand)
    if not cmds[-1]:
        raise TemplateError(line, "missing value in action")
    for cmd in cmds:
        if len(cmd) > 1 and not isinstance(cmd[0], _Func):
            raise TemplateError(line, "can't give arguments to a value that is not a function")
    return _Pipe(decl, assign, cmds, line)


def _operand(tokens: list[_Tok], pos: int, line: int, depth: int) -> tuple[Any, int]:
    tok = tokens[pos]
    kind, text = tok.kind, tok.text
    if kind == "lparen":
        if depth >= MAX_DEPTH:
            raise TemplateError(line, f"more than {MAX_DEPTH} nested parentheses")
        open_parens, end = 0, pos
        while end < len(tokens):
            if tokens[end].kind == "lparen":
                open_parens += 1
            elif tokens[end].kind == "rparen":
                open_parens -= 1
                if open_parens == 0:
                    break
            end += 1
        if end >= len(tokens):
            raise TemplateError(line, "unclosed (")
        inner = _pipe(tokens[pos + 1 : end], line, declare_ok=False, depth=depth + 1)
        return inner, end + 1
    if kind == "rparen":
        raise TemplateError(line, "unexpected )")
    if kind == "dot":
        return _Field(None, ()), pos + 1
    if kind == "field":
        return _Field(None, tuple(text[1:].split("."))), pos + 1
    if kind == "var":
        head, *names = text.split(".")
        return _Field(head, tuple(names)), pos + 1
    if kind == "string":
        return _Literal(_unquote(text[1:-1], line)), pos + 1
    if kind == "raw":
        return _Literal(text[1:-1]), pos + 1
    if kind == "char":
        char = _unquote(text[1:-1], line)
        if len(char) != 1:
            raise TemplateError(line, f"{text} is not one character")
        return _Literal(ord(char)), pos + 1
    if kind == "number":
        return _Literal(_number(text, line)), pos + 1
    if kind == "ident":
        if text in ("true", "false"):
            return _Literal(text == "true"), pos + 1
        if text == "nil":
            return _Literal(None), pos + 1
        if text in _KEYWORDS:
            raise TemplateError(line, f"unexpected {text}")
        if text not in _FUNCS:
            raise TemplateError(line, f'function "{text}" not defined')
        return _Func(text), pos + 1
    raise TemplateError(line, f"unexpected {text!r}")


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}
_ESCAPE = re.compile(
    r"\\(?:(?P<simple>[abfnrtv\\'\"])|x(?P<x>[0-9A-Fa-f]{2})|(?P<octal>[0-7]{3})"
    r"|u(?P<u>[0-9A-Fa-f]{4})|U(?P<U>[0-9A-Fa-f]{8})|(?P<bad>.?))",
    re.DOTALL,
)


def _unquote(body: str, line: int) -> str:
    """The text of a Go string or character literal between its quotes, as strconv.Unquote
    reads it: `\\xHH` and `\\ooo` are bytes of the UTF-8 text, `\\uHHHH` characters."""
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(body):
        out += body[pos : match.start()].encode("utf-8", "surrogatepass")
        pos = match.end()
        kind = match.lastgroup
        text = match[kind] if kind else ""
        if kind == "simple":
            out.append(_ESCAPES[text])
        elif kind in ("x", "octal") and int(text, 16 if kind == "x" else 8) <= 0xFF:
            out.append(int(text, 16 if kind == "x" else 8))
        elif (
            kind in ("u", "U")
            and int(text, 16) <= 0x10FFFF
            and not 0xD800 <= int(text, 16) < 0xE000
        ):
            out += chr(int(text, 16)).encode()
        else:
            raise TemplateError(line, f"invalid escape {match[0]} in a quoted string")
    out += body[pos:].encode("utf-8", "surrogatepass")
    return out.decode("utf-8", "replace")


def _number(text: str, line: int) -> int | float:
    """A number literal; Go's template refuses one that no int64 or float64 can hold."""
    digits = text.lstrip("+-")
    if not any(c in digits for c in ".eE") and len(digits.lstrip("0")) <= 19:
        number = int(text)
        if -(2**63) <= number < 2**64:
            return number
    value = float(text)
    if not math.isfinite(value):
        raise TemplateError(line, f"number {text[:40]} is out of range")
    return value


# ---------------------------------------------------------------- values as Go prints them


def go_str(value: Any) -> str:
    """fmt.Sprint of a value, as text/template prints it."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        items = " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty things are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def _sprint(*args: Any) -> str:
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*\d*(?:\.\d+)?)([vsdqtfxXgeo%])")


def _sprintf(fmt: str, *args: Any) -> str:
    values = iter(args)

    def one(match: re.Match[str]) -> str:
        flags, verb = match.group(1), match.group(2)
        if verb == "%":
            return "%"
        try:
            value = next(values)
        except StopIteration:
            return f"%!{verb}(MISSING)"
        if verb in "vst":
            return ("%" + flags + "s") % go_str(value)
        if verb == "q":
            return '"' + go_str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(("%" + flags + verb) % value)

    return _VERB.sub(one, fmt)


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        item = item.get(key) if isinstance(item, Mapping) else item[key]
    return item


def _eq(first: Any, *others: Any) -> bool:
    return any(first == other for other in others)


_FUNCS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: next((v for v in a if not truth(v)), a[-1]),
    "or": lambda *a: next((v for v in a if truth(v)), a[-1]),
    "not": lambda v: not truth(v),
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "len": len,
    "index": _index,
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *a: " ".join(go_str(v) for v in a) + "\n",
}


# ---------------------------------------------------------------- execution


class _Scope:
    def __init__(self, root: Any) -> None:
        self.frames: list[dict[str, Any]] = [{"$": root}]

    def push(self) -> None:
        self.frames.append({})

    def pop(self) -> None:
        self.frames.pop()

    def get(self, name: str, line: int) -> Any:
        for frame in reversed(self.frames):
            if name in frame:
                return frame[name]
        raise TemplateError(line, f"undefined variable {name}")

    def declare(self, name: str, value: Any) -> None:
        self.frames[-1][name] = value

    def assign(self, name: str, value: Any, line: int) -> None:
        for frame in reversed(self.frames):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(line, f"undefined variable {name}")


def _lookup(value: Any, names: Sequence[str], shown: str, line: int) -> Any:
    for i, name in enumerate(names):
        path = shown + "." + ".".join(names[: i + 1]) if shown else "." + ".".join(names[: i + 1])
        if isinstance(value, Mapping):
            if name not in value:
                known = ", ".join(sorted(str(k) for k in value))
                raise TemplateError(line, f"{path} is not defined (known: {known})")
            value = value[name]
        elif value is None:
            raise TemplateError(line, f"{path}: nil has no field {name}")
        elif hasattr(value, name) and not name.startswith("_"):
            value = getattr(value, name)
        else:
            raise TemplateError(line, f"{path}: can't get field {name} of {go_str(value)!r}")
    return value


class _Exec:
    def __init__(self, root: Any) -> None:
        self.scope = _Scope(root)
        self.out: list[str] = []

    def run(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, _Out):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(go_str(value))
            elif isinstance(node, _If):
                self.scope.push()
                branch = node.body if truth(self.pipe(node.cond, dot)) else node.orelse
                self.run(branch, dot)
                self.scope.pop()
            elif isinstance(node, _With):
                self.scope.push()
                value = self.pipe(node.pipe, dot)
                if truth(value):
                    self.run(node.body, value)
                else:
                    self.run(node.orelse, dot)
                self.scope.pop()
            elif isinstance(node, _Range):
                self.range(node, dot)

    def range(self, node: _Range, dot: Any) -> None:
        self.scope.push()
        pipe = node.pipe
        value = self.pipe(_Pipe([], False, pipe.cmds, pipe.line), dot)
        if value is None:
            items: list[tuple[Any, Any]] = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple | str):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise TemplateError(pipe.line, f"range can't iterate over {go_str(value)}")
        if not items:
            self.run(node.orelse, dot)
        for key, item in items:
            self.scope.push()
            if len(pipe.decl) == 1:
                self.scope.declare(pipe.decl[0], item)
            elif len(pipe.decl) == 2:
                self.scope.declare(pipe.decl[0], key)
                self.scope.declare(pipe.decl[1], item)
            self.run(node.body, item)
            self.scope.pop()
        self.scope.pop()

    def pipe(self, pipe: _Pipe, dot: Any) -> Any:
        value: Any = None
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, pipe.line, [value] if i else [])
        if len(pipe.decl) == 1:
            if pipe.assign:
                self.scope.assign(pipe.decl[0], value, pipe.line)
            else:
                self.scope.declare(pipe.decl[0], value)
        return value

    def command(self, cmd: list[Any], dot: Any, line: int, piped: list[Any]) -> Any:
        head = cmd[0]
        if isinstance(head, _Func):
            args = [self.operand(arg, dot, line) for arg in cmd[1:]] + piped
            try:
                return _FUNCS[head.name](*args)
            except TemplateError:
                raise
            except Exception as e:
                raise TemplateError(line, f"error calling {head.name}: {e}") from None
        if piped:
            raise TemplateError(line, "can't give the piped value to something not a function")
        return self.operand(head, dot, line)

    def operand(self, arg: Any, dot: Any, line: int) -> Any:
        if isinstance(arg, _Literal):
            return arg.value
        if isinstance(arg, _Pipe):
            return self.pipe(arg, dot)
        if isinstance(arg, _Func):
            return self.command([arg], dot, line, [])
        assert isinstance(arg, _Field)
        base = dot if arg.var is None else self.scope.get(arg.var, line)
        return _lookup(base, arg.names, arg.var or "", line)


def parse(source: str) -> list[Any]:
    """Check a template's syntax; raises TemplateError naming the line."""
    return _Parser(_split(source)).parse()


def render(source: str, data: Mapping[str, Any]) -> str:
    """Render `source` with `data` as the dot, as Go's template.Execute would."""
    executor = _Exec(data)
    executor.run(parse(source), data)
    return "".join(executor.out)
