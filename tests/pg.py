"""
A throwaway PostgreSQL server for the tests: initdb into a temporary
directory, pg_ctl on a free loopback port (its socket in that directory,
fsync off), databases made on demand, everything removed at the end.

The server binaries are Debian's (/usr/lib/postgresql/VERSION/bin, installed
by scripts/install-postgres). initdb refuses to run as root, so as root
every server command runs as the `postgres` system user. Missing binaries
fail the test with what to run; they never skip it.
"""

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support import WAIT, free_port

INSTALL = "run scripts/install-postgres (as root) to install Debian's PostgreSQL server"


def server_binaries():
    """The bin directory of the newest installed PostgreSQL; AssertionError saying what to run if none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    bin_dir = Path(found[-1]).parent if found else None
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        raise AssertionError(f"no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl): {INSTALL}")
    return bin_dir


class PostgresServer:
    """One cluster in its own directory, listening on 127.0.0.1 only, trusting local connections."""

    def __init__(self):
        self.bin = server_binaries()
        self.as_owner = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise AssertionError("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise AssertionError(f"no postgres system user: {INSTALL}")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.dir = Path(tempfile.mkdtemp(prefix="wsrelay-pg-"))
        if self.as_owner:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres"
        self._names = itertools.count(1)
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--no-sync",
                      "-E", "UTF8", "--locale=C")
            with open(self.data / "postgresql.conf", "a") as f:
                f.write("\n".join([
                    "listen_addresses = '127.0.0.1'", f"port = {self.port}",
                    f"unix_socket_directories = '{self.dir}'", "fsync = off", "synchronous_commit = off",
                    "full_page_writes = off", "max_connections = 40", "shared_buffers = 16MB", ""]))
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def _run(self, program, *args):
        result = subprocess.run([*self.as_owner, str(self.bin / program), *args], text=True, capture_output=True,
                                timeout=WAIT * 3, cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}")
        return result.stdout

    def start(self):
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", str(int(WAIT)), "start")
        return self

    def stop(self, mode="fast"):
        """Stop the server (`fast`: sessions are ended, a transaction in flight is rolled back)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(WAIT)), "stop")

    def running(self):
        return (self.data / "postmaster.pid").exists()

    def dsn(self, dbname="postgres"):
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def create_database(self):
        """A new empty database; its DSN."""
        import psycopg

        name = f"wsrelay_test_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=int(WAIT)) as db:
            # copying template0's files is about three times as fast here as the default (15+)
            fast = " STRATEGY FILE_COPY" if db.info.server_version >= 150000 else ""
            db.execute(f"CREATE DATABASE {name} TEMPLATE template0{fast}")
        return self.dsn(name)

    def remove(self):
        if self.running():
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass  # removed below either way
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
