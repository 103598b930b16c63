"""Reading a shell command the way a shell would, to decide whether a policy allows it.

:func:`parse_command` is a small tokenizer for POSIX shell with the bash extensions that matter for
safety. It does not run or expand anything; it reports

- the *programs*: every word in command position (the first word of each simple command, after
  ``;``, ``&&``, ``||``, ``|``, ``&``, newlines, ``(``, reserved words like ``if``/``then``/``do``,
  and inside ``$(...)``, backticks and ``<(...)``), each with whether it is a literal (a word with
  an expansion, a substitution, a glob or braces in it could become any program);
- the *features*: shell syntax found outside quotes (``pipe``, ``sequence``, ``redirection``,
  ``subshell``, ``substitution``, ``expansion``, ``glob``, ``tilde``, ``assignment``);
- ``argv``: the words with their quotes removed, which is what runs when there are no features.

Quoting follows the shell: single quotes make everything literal, double quotes keep ``$`` and
backticks live, a backslash escapes the next character. Anything it cannot read with certainty
(unterminated quotes, unbalanced parentheses, here-documents, function definitions, ``case``) is a
:class:`CommandRefusedError`: refusing is the safe answer to syntax a policy cannot check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import CommandRefusedError

__all__ = ["ParsedCommand", "Program", "parse_command"]

#: Words that keep the next word in command position (``if sh -c x; then ...``).
_KEEP_COMMAND = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"})
#: Words that end a compound command; what follows is an operator or a redirection.
_CLOSERS = frozenset({"fi", "done", "}"})
#: ``for``/``select`` take a name and a word list, none of them a command, up to the next operator.
_DATA_UNTIL_OPERATOR = frozenset({"for", "select"})
#: Syntax refused outright: its commands cannot be located reliably by a tokenizer.
_UNSUPPORTED = {"case": "'case' statements", "esac": "'case' statements", "function": "function definitions"}
#: Variables whose assignment changes which program a name runs, or what a shell runs on start.
_DANGEROUS_ASSIGNMENTS = re.compile(
    r"^(PATH|IFS|ENV|BASH_ENV|SHELLOPTS|BASHOPTS|CDPATH|GLOBIGNORE|PS4|PROMPT_COMMAND|LD_\w*|BASH_FUNC\w*)=",
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_NAME_START = re.compile(r"[A-Za-z_]")
_SPECIAL_PARAMS = set("@*#?-$!0123456789")
_OPERATOR_CHARS = set(";&|<>()\n")
_GLOB_CHARS = set("*?[]{}")


@dataclass(frozen=True, slots=True)
class Program:
    """A word in command position: ``name`` with quotes removed; ``literal`` is False when the word
    holds an expansion, a substitution, a glob or braces (its value is only known when it runs)."""

    name: str
    literal: bool


@dataclass(slots=True)
class ParsedCommand:
    """What :func:`parse_command` found (see the module docstring)."""

    argv: list[str] = field(default_factory=list)
    programs: list[Program] = field(default_factory=list)
    features: set[str] = field(default_factory=set)
    assignments: list[str] = field(default_factory=list)


def parse_command(text: str) -> ParsedCommand:
    """Parse shell command ``text``. Raises :class:`CommandRefusedError` for syntax it cannot check."""
    if "\x00" in text:
        raise CommandRefusedError("the command holds a NUL character")
    result = ParsedCommand()
    parser = _Parser(text, result)
    parser.run(stop=None)
    if not result.argv and not result.programs:
        raise CommandRefusedError("the command is empty")
    return result


class _Word:
    __slots__ = ("chars", "literal", "quoted", "raw_start")

    def __init__(self, raw_start: int) -> None:
        self.chars: list[str] = []
        self.literal = True
        self.quoted = False
        self.raw_start = raw_start


class _Parser:
    """One pass over ``text`` (or a nested part of it); programs and features go into ``out``."""

    def __init__(self, text: str, out: ParsedCommand, *, top: bool = True) -> None:
        self.text = text
        self.out = out
        self.top = top  # only the outermost words are argv
        self.pos = 0
        self.word: _Word | None = None
        self.expect_command = True
        self.data_mode = False  # after for/select: words are data up to the next operator
        self.redirect_pending = False
        self.depth = 0

    # -- driver ------------------------------------------------------------------------------------

    def run(self, stop: str | None) -> None:
        """Read until the end, or until an unmatched ``stop`` (``)`` closing ``$(``)."""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t":
                self._end_word()
                self.pos += 1
            elif c == "#" and self.word is None:
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            elif c == "\\":
                nxt = text[self.pos + 1 : self.pos + 2]
                if not nxt:
                    raise CommandRefusedError("the command ends with a lone backslash")
                if nxt != "\n":  # backslash-newline is a line continuation
                    self._char(nxt)
                    self._current().quoted = True
                self.pos += 2
            elif c == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise CommandRefusedError("the command has an unterminated single quote")
                word = self._current()
                word.chars.append(text[self.pos + 1 : end])
                word.quoted = True
                self.pos = end + 1
            elif c == '"':
                self._double_quoted()
            elif c == "`":
                self._backtick()
            elif c == "$":
                self._dollar()
            elif c in _OPERATOR_CHARS:
                if c == ")" and stop == ")" and self.depth == 0:
                    self._end_word()
                    self.pos += 1
                    return
                self._operator(c)
            else:
                if c in _GLOB_CHARS:
                    self._feature("glob")
                    self._current().literal = False
                elif c == "~" and self.word is None:
                    self._feature("tilde")
                    self._current().literal = False
                self._char(c)
                self.pos += 1
        self._end_word()
        if stop is not None:
            raise CommandRefusedError("the command has an unterminated '$(' substitution")
        if self.depth:
            raise CommandRefusedError("the command has an unclosed '('")
        if self.redirect_pending:
            raise CommandRefusedError("the command ends with a redirection and no target")

    # -- words -------------------------------------------------------------------------------------

    def _current(self) -> _Word:
        if self.word is None:
            self.word = _Word(self.pos)
        return self.word

    def _char(self, c: str) -> None:
        self._current().chars.append(c)

    def _feature(self, name: str) -> None:
        self.out.features.add(name)

    def _end_word(self) -> None:
        word, self.word = self.word, None
        if word is None:
            return
        value = "".join(word.chars)
        raw = self.text[word.raw_start : self.pos]
        if self.top:
            self.out.argv.append(value)
        if self.redirect_pending:
            self.redirect_pending = False
            return
        if self.data_mode or not self.expect_command:
            return
        if _ASSIGNMENT.match(raw):
            self._feature("assignment")
            self.out.assignments.append(raw)
            if _DANGEROUS_ASSIGNMENTS.match(raw):
                name = raw.split("=", 1)[0].split("[", 1)[0].rstrip("+")
                raise CommandRefusedError(
                    f"assigning {name} in a command is not allowed: it changes what runs"
                )
            return
        if not word.quoted and value in _UNSUPPORTED:
            raise CommandRefusedError(f"{_UNSUPPORTED[value]} are not supported in sandbox commands")
        if not word.quoted and word.literal and value in _KEEP_COMMAND:
            self._feature("subshell" if value == "{" else "compound")
            return
        if not word.quoted and word.literal and value in _CLOSERS:
            self._feature("compound")
            self.expect_command = False
            return
        if not word.quoted and word.literal and value in _DATA_UNTIL_OPERATOR:
            self._feature("compound")
            self.data_mode = True
            return
        self.out.programs.append(Program(value, word.literal))
        self.expect_command = False

    # -- quoting, expansion and substitution -------------------------------------------------------

    def _double_quoted(self) -> None:
        text = self.text
        word = self._current()
        word.quoted = True
        self.pos += 1
        while self.pos < len(text):
            c = text[self.pos]
            if c == '"':
                self.pos += 1
                return
            if c == "\\":
                nxt = text[self.pos + 1 : self.pos + 2]
                if nxt in ('"', "\\", "$", "`"):
                    word.chars.append(nxt)
                elif nxt != "\n":
                    word.chars.append(c + nxt)
                self.pos += 2
            elif c == "`":
                self._backtick()
            elif c == "$":
                self._dollar()
            else:
                word.chars.append(c)
                self.pos += 1
        raise CommandRefusedError("the command has an unterminated double quote")

    def _dollar(self) -> None:
        text = self.text
        nxt = text[self.pos + 1 : self.pos + 2]
        word = self._current()
        if nxt == "(":
            self._feature("substitution")
            word.literal = False
            word.chars.append("$(...)")
            self.pos += 2
            self._nested(stop=")")
        elif nxt == "{":
            end = text.find("}", self.pos + 2)
            if end < 0:
                raise CommandRefusedError("the command has an unterminated '${'")
            inner = text[self.pos + 2 : end]
            if any(mark in inner for mark in ("$", "`", "(", "\\", "'", '"')):
                raise CommandRefusedError("nested expansions inside '${...}' are not supported")
            self._feature("expansion")
            word.literal = False
            word.chars.append(text[self.pos : end + 1])
            self.pos = end + 1
        elif nxt in ("'", '"'):  # $'...' (ANSI-C) and $"..." (locale) quoting: decoded by bash
            self._feature("expansion")
            word.literal = False
            self.pos += 1
            if nxt == '"':
                self._double_quoted()
                return
            end = self.pos + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise CommandRefusedError("the command has an unterminated $'...' quote")
            word.chars.append(text[self.pos + 1 : end])
            self.pos = end + 1
        elif nxt and (_NAME_START.match(nxt) or nxt in _SPECIAL_PARAMS):
            self._feature("expansion")
            word.literal = False
            end = self.pos + 2
            if nxt not in _SPECIAL_PARAMS:
                while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                    end += 1
            word.chars.append(text[self.pos : end])
            self.pos = end
        else:  # a lone '$' is literal
            word.chars.append("$")
            self.pos += 1

    def _backtick(self) -> None:
        text = self.text
        end = self.pos + 1
        inner: list[str] = []
        while end < len(text) and text[end] != "`":
            if text[end] == "\\" and end + 1 < len(text):
                inner.append(text[end + 1])
                end += 2
            else:
                inner.append(text[end])
                end += 1
        if end >= len(text):
            raise CommandRefusedError("the command has an unterminated backtick")
        self._feature("substitution")
        word = self._current()
        word.literal = False
        word.chars.append("`...`")
        nested = _Parser("".join(inner), self.out, top=False)
        nested.run(stop=None)
        self.pos = end + 1

    def _nested(self, stop: str) -> None:
        """Parse a ``$(...)`` / ``<(...)`` body in place: its commands are programs like any other."""
        nested = _Parser(self.text, self.out, top=False)
        nested.pos = self.pos
        nested.run(stop=stop)
        self.pos = nested.pos

    # -- operators ---------------------------------------------------------------------------------

    def _operator(self, c: str) -> None:
        text = self.text
        two = text[self.pos : self.pos + 2]
        # "2>file", "2>&1": the digits before a redirection are its file descriptor, not a word
        if (
            c in "<>"
            and self.word is not None
            and "".join(self.word.chars).isdigit()
            and not self.word.quoted
        ):
            self.word = None
        else:
            self._end_word()
        if c in "<>" and two in ("<(", ">("):  # process substitution (bash)
            self._feature("substitution")
            word = self._current()
            word.literal = False
            word.chars.append(two + "...)")
            self.pos += 2
            self._nested(stop=")")
            return
        if two == "<<":
            raise CommandRefusedError("here-documents are not supported; write the file with the write tool")
        if c in "<>" or two == "&>":
            self._feature("redirection")
            self.pos += 2 if two in (">>", ">&", "<&", "<>", ">|", "&>") else 1
            if text[self.pos : self.pos + 1] == ">" and two == "&>":  # &>>
                self.pos += 1
            self.redirect_pending = True
            return
        if self.redirect_pending:
            raise CommandRefusedError("a redirection has no target")
        if c == "(":
            rest = text[self.pos + 1 :].lstrip(" \t")
            if rest.startswith(")"):
                raise CommandRefusedError("function definitions are not supported in sandbox commands")
            if not self.expect_command:
                raise CommandRefusedError("'(' must start a command")
            self._feature("subshell")
            self.depth += 1
            self.pos += 1
            self.expect_command = True
            return
        if c == ")":
            if self.depth == 0:
                raise CommandRefusedError("the command has an unmatched ')'")
            self.depth -= 1
            self.pos += 1
            # what follows ``)`` can only be an operator, a redirection or the body of a function
            # definition: keeping command position makes a body's commands checked like any other
            self.expect_command = True
            return
        if two in ("&&", "||", ";;", "|&"):
            self.pos += 2
            self._feature("pipe" if two == "|&" else "sequence")
        else:
            self.pos += 1
            self._feature("pipe" if c == "|" else "sequence")
        self.expect_command = True
        self.data_mode = False
