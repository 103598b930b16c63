"""The policy reads commands like a shell: no bypass through compound syntax, substitution,
indirection or tricks of quoting; a differential test runs what it allows under bash and checks that
no program it did not allow ever ran."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.sandbox import CommandRefusedError, SandboxPolicy
from pyflue.sandbox.command import parse_command

SIMPLE = SandboxPolicy(shell=True, commands={"ls", "cat", "echo", "printenv"})
COMPOUND = SandboxPolicy(shell=True, commands={"ls", "cat", "echo", "grep"}, compound=True)
ANY_PROGRAM = SandboxPolicy(shell=True, compound=True)

BYPASSES = [
    "ls; cat /etc/passwd", "ls $(cat /etc/passwd)", "ls `id`", "ls\ncat /etc/passwd", "ls\r\nid",
    "env cat /etc/passwd", "sh -c 'cat /etc/passwd'", "bash -c id", "/bin/sh -c id", "ls && id", "ls || id",
    "ls | cat", "ls > out", "ls >> out", "ls < /etc/passwd", "ls 2>&1", "(id)", "{ id; }", "X=1 ls", "ls &",
    "xargs id", "id", "ls ${HOME}", "ls $HOME", "ls ~", "ls *", "ls <(id)", "cat <<EOF", "ls |& cat",
    "! ls", "if id; then ls; fi", "ls &> out", "ls \\\n; id",
]  # fmt: skip


def test_the_shell_is_off_unless_allowed() -> None:
    with pytest.raises(CommandRefusedError, match="shell is off"):
        SandboxPolicy().check("ls")
    with pytest.raises(CommandRefusedError, match="shell is off"):
        SandboxPolicy(commands={"ls"}).check(["ls"])


@pytest.mark.parametrize("command", BYPASSES)
def test_simple_policy_refuses_every_compound_form(command: str) -> None:
    with pytest.raises(CommandRefusedError):
        SIMPLE.check(command)


def test_simple_commands_become_an_argv_without_a_shell() -> None:
    checked = SIMPLE.check("""cat 'a file' "b c" d\\ e '$(x)' "\\$y" """)
    assert checked.script is False
    assert checked.argv == ("cat", "a file", "b c", "d e", "$(x)", "$y")
    assert SIMPLE.check(["echo", "a;b", "$(id)"]).argv == ("echo", "a;b", "$(id)")
    with pytest.raises(CommandRefusedError, match="not allowed"):
        SIMPLE.check(["id"])


@pytest.mark.parametrize(
    "command",
    [
        "ls; id", "ls $(id)", "ls `sh -c id`", "echo x | sh", "if sh -c x; then ls; fi", "{sh,-c,id}",
        "$X -c id", "PATH=. ls", "IFS=x ls", "ls && (id)", "echo $(echo `id`)", "ls <(env)", "f() { id; }",
        "function f { id; }", "case x in a) id;; esac", "eval id", "ls; exec id", "ls 'unterminated",
        'ls "unterminated', "ls $(unterminated", "echo ${X:-$(id)}", "ls )", "echo `id", "time id",
        "ls\nid", "while id; do ls; done", "for x in a; do id; done", "'id'", "e'c'ho x | id",
    ],
)  # fmt: skip
def test_compound_policy_checks_every_nested_program(command: str) -> None:
    with pytest.raises(CommandRefusedError):
        COMPOUND.check(command)


def test_compound_policy_allows_compound_syntax_of_allowed_programs() -> None:
    checked = COMPOUND.check("ls -la | grep x && cat 'a b' > out 2>&1; echo $(ls) `echo hi` ${HOME}")
    assert checked.script and checked.argv[:2] == ("bash", "-c")
    assert COMPOUND.check("for f in a b; do cat $f; done").script


@pytest.mark.parametrize(
    "command", ["sh -c id", "env", "xargs ls", "echo $(bash -c id)", "nohup id", "command -v id", ". ./x"]
)
def test_indirection_is_refused_even_when_any_program_is_allowed(command: str) -> None:
    with pytest.raises(CommandRefusedError, match="runs other commands"):
        ANY_PROGRAM.check(command)


def test_indirection_is_allowed_when_named() -> None:
    policy = SandboxPolicy(shell=True, commands={"sh", "env"})
    assert policy.check("sh -c 'ls | wc -l'").argv == ("sh", "-c", "ls | wc -l")
    assert policy.check(["env"]).argv == ("env",)


def test_policy_configuration_errors_are_typed() -> None:
    bad_settings: list[dict[str, Any]] = [
        {"commands": "ls"},
        {"secrets": {"1X": "v"}},
        {"secrets": {"PATH": "/tmp"}},
        {"secrets": {"A": 1}},
        {"timeout": 0},
        {"max_output": -1},
        {"timeout": float("nan")},
    ]
    for bad in bad_settings:
        with pytest.raises(ConfigError):
            SandboxPolicy(**bad)  # type: ignore[arg-type]
    assert "hush" not in repr(SandboxPolicy(secrets={"TOKEN": "hush"}))


# -- differential: what the parser allows never runs a forbidden program under bash ------------------

_tokens = st.sampled_from(
    ["alpha ", "alpha ", "alpha ", "alpha", "; alpha ", "| alpha ", "omega", " ", " ", ";", "&&", "||",
     "|", "&", "\n", "$(", ")", "(", "`", "'", '"', "\\",
     "$", "{", "}", ",", "#", "=", "O=omega", "$O", "<", ">", "2>&1", "x", "-c", "${O}", "~", "*", "!",
     "if", "then", "fi", "do", "done", "for", "in", "while", "$'\\x6fmega'", "<(", "\\\n"]
)  # fmt: skip


@pytest.fixture(scope="module")
def stubs() -> tuple[Path, Path]:
    """A PATH holding ``alpha`` (allowed, does nothing) and ``omega`` (forbidden: leaves a mark)."""
    base = Path(tempfile.mkdtemp(prefix="pyflue-policy-"))
    bin_dir = base / "bin"
    bin_dir.mkdir()
    mark = base / "omega-ran"
    for name, body in [("alpha", "exit 0"), ("omega", f"touch {mark}")]:
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir, mark


@settings(max_examples=300, deadline=None)
@given(st.lists(_tokens, min_size=1, max_size=12))
def test_allowed_commands_never_run_a_forbidden_program(stubs: tuple[Path, Path], tokens: list[str]) -> None:
    bin_dir, mark = stubs
    command = "".join(tokens)
    policy = SandboxPolicy(shell=True, commands={"alpha"}, compound=True, path=str(bin_dir))
    try:
        checked = policy.check(command)
    except CommandRefusedError:
        return
    with tempfile.TemporaryDirectory() as cwd:
        try:
            subprocess.run(
                ["/bin/bash", "-c", checked.text] if checked.script else list(checked.argv),
                cwd=cwd, env={"PATH": str(bin_dir), "O": "omega"}, timeout=20, capture_output=True,
            )  # fmt: skip
        except FileNotFoundError:  # an allowed argv naming no program: nothing ran
            assert not checked.script
    assert not mark.exists(), f"{command!r} ran omega"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_the_parser_refuses_or_reads_any_text(text: str) -> None:
    try:
        parsed = parse_command(text)
    except CommandRefusedError as exc:
        assert len(str(exc)) < 300
        return
    assert parsed.argv or parsed.programs
    assert all(isinstance(p.name, str) for p in parsed.programs)


def test_secrets_in_the_host_environment_do_not_reach_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFLUE_TEST_SECRET", "host-secret-value")
    env = SandboxPolicy(shell=True, secrets={"GITHUB_TOKEN": "granted"}).base_environment("/sandbox")
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/sandbox", "LANG": "C.UTF-8"}
    assert "PYFLUE_TEST_SECRET" in os.environ
