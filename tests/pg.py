"""A throwaway PostgreSQL server for the tests and benchmarks: a new cluster in a temporary folder,
listening on 127.0.0.1 only (and a socket in that folder) on a free port, with a random password;
stopped and removed at the end. Uses the server binaries of Debian's ``postgresql`` package
(``scripts/test.sh`` installs it where it is missing).

PostgreSQL refuses to run as root: as root, the cluster is made and run by the ``postgres`` user
the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "autodistill"


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest installed version), or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    host: str
    port: int
    password: str

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{USER}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg2

        con = psycopg2.connect(self.url("postgres"))
        try:
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)


@contextmanager
def postgres(fast: bool = True) -> Iterator[Server]:
    """A running server for the block. ``fast``: no fsync (a test's data need not survive a power
    cut); a benchmark passes False to time what a real server does."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL's server (initdb, pg_ctl) is not installed: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="autodistill-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = root / "data"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
    init = [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256"]
    subprocess.run([*run_as, *init, "-E", "UTF8", "--no-sync"], check=True, **quiet)
    pwfile.unlink()
    port = _free_port()
    options = f"-k {root} -h 127.0.0.1 -p {port} -c max_connections=200"
    if fast:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
    try:
        started = subprocess.run([*ctl, "-w", "-o", options, "start"], **quiet)
        if started.returncode != 0:
            log = (root / "log").read_text()[-2000:] if (root / "log").exists() else started.stderr
            raise RuntimeError(f"PostgreSQL did not start: {log}")
        yield Server("127.0.0.1", port, password)
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], **quiet)
        shutil.rmtree(root, ignore_errors=True)
