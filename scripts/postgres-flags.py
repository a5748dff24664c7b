"""Turns a DATABASE_URL (postgres://user:password@host:port/db) into Resonate server flags."""

import sys
from urllib.parse import unquote, urlsplit


def postgres_flags(database_url: str) -> list[str]:
    url = urlsplit(database_url)
    if url.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"DATABASE_URL must start with postgres://, got {url.scheme}://")
    flags = [
        "--aio-store-sqlite-enable=false",
        "--aio-store-postgres-enable",
        f"--aio-store-postgres-host={url.hostname or 'localhost'}",
        f"--aio-store-postgres-port={url.port or 5432}",
        f"--aio-store-postgres-database={url.path.lstrip('/') or 'resonate'}",
    ]
    if url.username:
        flags.append(f"--aio-store-postgres-username={unquote(url.username)}")
    if url.password:
        flags.append(f"--aio-store-postgres-password={unquote(url.password)}")
    return flags


if __name__ == "__main__":
    print("\n".join(postgres_flags(sys.argv[1])))
