"""A throwaway PostgreSQL cluster for the tests: ``initdb`` + ``pg_ctl`` in a temporary directory,
listening on a free 127.0.0.1 port only, trust authentication, gone when the test session ends.

PostgreSQL refuses to run as root (CI runs as root), so as root the server runs as the ``postgres``
user that Debian's package creates, in a directory that user owns. The binaries are found on
``PATH``, through ``pg_config --bindir``, or in Debian's ``/usr/lib/postgresql/<version>/bin``.
One cluster serves the whole test session: :func:`shared_cluster` keeps it on pytest's config.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

__all__ = ["Cluster", "find_bindir", "shared_cluster"]

_KEY = pytest.StashKey["Cluster"]()
_INSTALL = "install PostgreSQL (Debian: apt-get install -y postgresql; .ci/run does it)"


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``; ``pytest.fail`` saying how to install them."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    config = shutil.which("pg_config")
    if config:
        bindir = Path(subprocess.run([config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    versions = (
        sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
        if Path("/usr/lib/postgresql").is_dir()
        else []
    )
    if versions:
        return versions[-1].parent
    pytest.fail(f"PostgreSQL's initdb and pg_ctl were not found; {_INSTALL}", pytrace=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """One PostgreSQL server in its own directory; ``url`` reaches its ``postgres`` database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pyflue-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(f"running as root and there is no 'postgres' user to run the server; {_INSTALL}")
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._user is not None:
            command = ["runuser", "-u", self._user.pw_name, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}\n{tail}")

    def start(self, *, durable: bool = False) -> None:
        """Create and start the cluster; tests run it without fsync, ``durable`` keeps PostgreSQL's
        defaults (every commit flushed to disk) for benchmarks."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            "-c unix_socket_directories=''",
            "-c max_connections=300",
        ]
        if not durable:
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options = " ".join(settings)
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
        )

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def shared_cluster(config: pytest.Config) -> Cluster:
    """The test session's cluster, started on first use and stopped when the session ends."""
    cluster = config.stash.get(_KEY, None)
    if cluster is None:
        cluster = Cluster(find_bindir())
        config.add_cleanup(cluster.stop)
        cluster.start()
        config.stash[_KEY] = cluster
    return cluster
