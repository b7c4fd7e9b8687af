"""A throwaway PostgreSQL server on 127.0.0.1 for tests that need a real operational database.

Why a real server and not a mock: the loader reads the source database through SQLAlchemy, and
what matters is how a real driver hands over `timestamptz` and `numeric` values and how a real
server refuses a wrong password. Debian's binaries (`apt-get install -y postgresql`) are used
directly with `initdb`/`pg_ctl`; nothing is installed or registered system-wide.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user (or `nobody`) in a data directory that user owns. pytest's tmp_path lives
under a directory only root may enter, so in that case the data directory is a fresh
`tempfile.mkdtemp()` folder that `stop()` removes.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_START_TIMEOUT_S = 60


def find_pg_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin directory, or the one holding `initdb` on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """None when we are not root (the server runs as us); else an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


@dataclass
class PgServer:
    """One running server: a superuser `user` with `password`, reachable on 127.0.0.1:port."""

    bindir: Path
    root: Path
    port: int
    user: str
    password: str
    _remove_root: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str, password: str | None = None) -> str:
        """SQLAlchemy URL for the psycopg 3 driver (what CRM_SOURCE_DB_URL carries)."""
        secret = self.password if password is None else password
        return f"postgresql+psycopg://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={self.user} "
            f"password={self.password} dbname={database}"
        )

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        _run_as_server_user(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
            check=False,
        )
        if self._remove_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _run_as_server_user(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    account = _server_user()
    kwargs: dict = {}
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    if account is not None:
        kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        env["HOME"] = account.pw_dir
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def start_pg_server(tmp_path: Path, *, user: str, password: str) -> PgServer:
    """initdb + pg_ctl start on a free port; password (scram) authentication over TCP.

    Raises RuntimeError when the binaries are missing: install them with
    `apt-get install -y postgresql`."""
    bindir = find_pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found: apt-get install -y postgresql")
    account = _server_user()
    if account is None:
        root, remove_root = tmp_path / "pg", False
        root.mkdir(parents=True, exist_ok=True)
    else:
        root, remove_root = Path(tempfile.mkdtemp(prefix="crm-pg-")), True
        os.chmod(root, 0o755)
        os.chown(root, account.pw_uid, account.pw_gid)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if account is not None:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    server = PgServer(bindir, root, free_port(), user, password, remove_root)
    _run_as_server_user(
        [
            str(bindir / "initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            user,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        ]
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={server.port} "
        f"-c unix_socket_directories={root} -c fsync=off -c timezone=UTC"
    )
    try:
        _run_as_server_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(server.data_dir),
                "-l",
                str(root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(SERVER_START_TIMEOUT_S),
                "start",
            ]
        )
    except RuntimeError:
        log = root / "server.log"
        detail = log.read_text(errors="replace") if log.exists() else ""
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{detail}") from None
    return server
