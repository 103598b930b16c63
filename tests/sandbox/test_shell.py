"""Commands in a local sandbox: a clean environment (host secrets never visible unless granted), the
timeout and cancellation kill the whole process group, output limits, and no shell in the virtual
sandbox. Real subprocesses throughout."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from pyflue.sandbox import CommandRefusedError, SandboxFS, SandboxPathError, SandboxPolicy, local, virtual

HOST_SECRET = "host-secret-value-1234"
_SPAWN_SLEEPER = (
    "import subprocess, sys; child = subprocess.Popen(['sleep', '300']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); child.wait()"
)


def _gone(pid: int) -> bool:
    """The process no longer runs: it does not exist, or it is a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


async def _wait_gone(pid: int) -> bool:
    for _ in range(500):  # the kill is sent before exec returns; reaping by init may lag a little
        if _gone(pid):
            return True
        await anyio.sleep(0.01)
    return False


async def test_commands_see_a_clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYFLUE_TEST_SECRET", HOST_SECRET)
    sandbox = local(tmp_path, policy=SandboxPolicy(shell=True, commands={"printenv"}))
    result = await SandboxFS(sandbox).shell("printenv")
    env = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert env == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": sandbox.host_path, "LANG": "C.UTF-8"}
    assert HOST_SECRET not in result.stdout + result.stderr


async def test_a_host_secret_is_invisible_through_every_route_unless_granted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYFLUE_TEST_SECRET", HOST_SECRET)
    policy = SandboxPolicy(shell=True, compound=True)
    fs = SandboxFS(local(tmp_path, policy=policy))
    for command in ["printenv PYFLUE_TEST_SECRET", "echo $PYFLUE_TEST_SECRET", "cat /proc/self/environ",
                    "set", "export -p", "declare -x"]:  # fmt: skip
        result = await fs.shell(command)
        assert HOST_SECRET not in result.stdout + result.stderr, command
    granted = SandboxFS(
        local(tmp_path, policy=SandboxPolicy(shell=True, secrets={"GITHUB_TOKEN": "ghp_granted"}))
    )
    assert (await granted.shell("printenv GITHUB_TOKEN")).stdout == "ghp_granted\n"
    assert (await granted.shell("printenv PYFLUE_TEST_SECRET")).exit_code == 1


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    policy = SandboxPolicy(shell=True, timeout=0.5)
    fs = SandboxFS(local(tmp_path, policy=policy))
    result = await fs.shell([sys.executable, "-c", _SPAWN_SLEEPER, "child.pid"])
    assert result.timed_out and result.exit_code is None
    assert await _wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_a_finished_command_leaves_no_background_job(tmp_path: Path) -> None:
    fs = SandboxFS(local(tmp_path, policy=SandboxPolicy(shell=True, compound=True)))
    result = await fs.shell("sleep 300 & echo $!")
    assert result.exit_code == 0 and not result.timed_out
    assert await _wait_gone(int(result.stdout))


async def test_cancelling_a_command_kills_its_process_group(tmp_path: Path) -> None:
    fs = SandboxFS(local(tmp_path, policy=SandboxPolicy(shell=True)))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(fs.shell, [sys.executable, "-c", _SPAWN_SLEEPER, "child.pid"])
        # the child's pid is in a file the subprocess writes: poll for it
        while not await anyio.Path(tmp_path / "child.pid").exists():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        while not await anyio.Path(tmp_path / "child.pid").read_text():  # noqa: ASYNC110
            await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    assert await _wait_gone(int((tmp_path / "child.pid").read_text()))


async def test_output_is_cut_to_the_limit_with_head_and_tail(tmp_path: Path) -> None:
    fs = SandboxFS(local(tmp_path, policy=SandboxPolicy(shell=True, max_output=1000)))
    result = await fs.shell([sys.executable, "-c", "print('H' + 'x' * 1_000_000 + 'T')"])
    assert result.truncated and result.exit_code == 0
    assert result.stdout.startswith("H") and result.stdout.rstrip().endswith("T")
    assert "bytes of output cut" in result.stdout and len(result.stdout) < 1100


async def test_timeout_per_call_is_capped_by_the_policy(tmp_path: Path) -> None:
    fs = SandboxFS(local(tmp_path, policy=SandboxPolicy(shell=True, timeout=0.3)))
    result = await fs.shell(["sleep", "30"], timeout=1000)
    assert result.timed_out


async def test_stdin_cwd_and_exit_codes(tmp_path: Path) -> None:
    fs = SandboxFS(local(tmp_path, policy=SandboxPolicy(shell=True)))
    await fs.write("sub/x.txt", "x")
    assert (await fs.shell(["cat"], stdin="piped")).stdout == "piped"
    assert (await fs.shell(["ls"], cwd="sub")).stdout == "x.txt\n"
    assert (await fs.shell(["false"])).exit_code == 1
    missing = await fs.shell(["no-such-program-anywhere"])
    assert missing.exit_code == 127 and "not found" in missing.stderr
    with pytest.raises(SandboxPathError):
        await fs.shell(["ls"], cwd="../")


async def test_shell_exec_events_name_the_command_and_how_it_ended(tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    policy = SandboxPolicy(shell=True, compound=True, secrets={"TOKEN": "tok-secret-value"})
    fs = SandboxFS(local(tmp_path, policy=policy), lambda t, d: events.append((t, d)))
    await fs.shell("echo tok-secret-value; exit 3")
    [(kind, data)] = events
    assert kind == "shell_exec"
    assert data["command"] == "echo [secret TOKEN]; exit 3"
    assert data["exit_code"] == 3 and data["timed_out"] is False and data["duration_ms"] >= 0


async def test_the_virtual_sandbox_has_no_shell() -> None:
    with pytest.raises(CommandRefusedError, match="no shell"):
        await SandboxFS(virtual()).shell("ls")
    with pytest.raises(CommandRefusedError, match="no shell"):
        await virtual().exec(["ls"], timeout=1, max_output=10)
