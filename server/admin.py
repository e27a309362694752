"""Operator commands of `ferry-server`: `create-user` and `backup`.

`create-user USERNAME` makes an account the way `POST /api/auth/register` does (same
validation, same password hashing); the password comes from standard input
(`--password-stdin`, first line) or from a prompt, never from the command line, where other
users could read it in the process list.

`backup DIR` writes a consistent copy of the database while the server keeps running:
- SQLite: the sqlite3 online backup API, into `DIR/ferry-<UTC time>.db` (a plain SQLite
  file; restore by stopping the server and putting it in place of `ferry.db`);
- PostgreSQL: `pg_dump --format=custom` (one snapshot, so consistent), into
  `DIR/ferry-<UTC time>.dump`; restore with `pg_restore --dbname=URL --no-owner FILE`
  into an empty database. The password, if the URL has one, goes to pg_dump in
  `PGPASSWORD`, not on its command line.
"""

from __future__ import annotations

import getpass
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.db import Database
from server.migrate import upgrade
from server.models import User, UserRegister
from server.security import Passwords
from server.settings import Settings


def _fail(message: str, code: int = 1) -> int:
    print(f"ferry-server: {message}", file=sys.stderr)
    return code


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat the password: ") != first:
        return None
    return first


def create_user(settings: Settings, username: str, password_stdin: bool, email: str | None = None) -> int:
    password = _read_password(password_stdin)
    if password is None:
        return _fail("no password: use --password-stdin, or run in a terminal and type it twice", 2)
    try:
        body = UserRegister(username=username, password=password, email=email)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _fail(f"invalid account: {reasons}", 2)
    settings.resolved_data_dir()
    db = Database(settings)
    try:
        upgrade(db)
        user = User(
            id=str(uuid.uuid4()),
            username=body.username.lower(),
            email=body.email,
            password_hash=Passwords().hash(body.password),
            created_ms=int(time.time() * 1000),
        )
        try:
            with db.write() as session:
                if session.execute(select(User.id).where(User.username == user.username)).first() is not None:
                    return _fail(f"the username {user.username!r} is taken")
                session.add(user)
        except IntegrityError:
            return _fail(f"the username {user.username!r} is taken")
    finally:
        db.dispose()
    print(f"created user {user.username} ({user.id})")
    return 0


def backup(settings: Settings, directory: Path) -> int:
    db = Database(settings)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if db.is_sqlite:
            source = Path(db.url.database or "")
            if not source.is_file():
                return _fail(f"no database at {source}")
            target = directory / f"ferry-{stamp}.db"
            _sqlite_backup(source, target)
        else:
            target = directory / f"ferry-{stamp}.dump"
            error = _pg_dump(db, target)
            if error:
                target.unlink(missing_ok=True)
                return _fail(error)
    finally:
        db.dispose()
    print(target)
    return 0


def _sqlite_backup(source: Path, target: Path) -> None:
    partial = target.with_suffix(".partial")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # one consistent snapshot, even while the server writes
        finally:
            dst.close()
    finally:
        src.close()
    partial.replace(target)


def _pg_dump(db: Database, target: Path) -> str | None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return "pg_dump not found: install PostgreSQL's client tools (Debian: postgresql-client)"
    url = db.url.set(drivername="postgresql")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
        url = url.set(password=None)
    partial = target.with_suffix(".partial")
    result = subprocess.run(
        [pg_dump, "--format=custom", "--no-owner", f"--file={partial}",
         f"--dbname={url.render_as_string(hide_password=False)}"],
        env=env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return f"pg_dump failed: {result.stderr.strip()}"
    partial.replace(target)
    return None
