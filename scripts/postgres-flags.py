"""Turns a DATABASE_URL (postgres://user:password@host:port/db?opts) into Resonate server flags.

The password is not a flag (flags show in `ps`): `--password` prints it alone, and
scripts/resonate-serve hands it to the server in the environment variable the server reads
(AIO_SUBSYSTEMS_STOREPOSTGRES_CONFIG_PASSWORD, viper's name for the password setting).
The query string (e.g. ?sslmode=verify-full) becomes the server's --aio-store-postgres-query. The
server's Postgres driver (lib/pq) requires TLS unless told otherwise, and a local Debian cluster
has none: without an explicit sslmode, a loopback host gets sslmode=disable and any other host
keeps the driver's default, require.
"""

import os
import sys
from urllib.parse import parse_qsl, unquote, urlsplit

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def postgres_flags(database_url: str) -> list[str]:
    url = urlsplit(database_url)
    if url.scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"DATABASE_URL must start with postgres://, got {url.scheme}://")
    host = url.hostname or "localhost"
    flags = [
        "--aio-store-sqlite-enable=false",
        "--aio-store-postgres-enable",
        f"--aio-store-postgres-host={host}",
        f"--aio-store-postgres-port={url.port or 5432}",
        f"--aio-store-postgres-database={unquote(url.path.lstrip('/')) or 'resonate'}",
    ]
    if url.username:
        flags.append(f"--aio-store-postgres-username={unquote(url.username)}")
    query = dict(parse_qsl(url.query))
    if "sslmode" not in query and host in LOOPBACK:
        query["sslmode"] = "disable"
    if query:
        if any("," in key + value or "=" in key for key, value in query.items()):
            raise SystemExit("DATABASE_URL query options may not contain ',' or '='")
        options = ",".join(f"{key}={value}" for key, value in query.items())
        flags.append(f"--aio-store-postgres-query={options}")
    return flags


def password(database_url: str) -> str:
    return unquote(urlsplit(database_url).password or "")


def libpq_env(database_url: str) -> list[str]:
    """PGHOST=... lines for psql, which then needs no URL (and so no password) in its argv."""
    url = urlsplit(database_url)
    env = {"PGHOST": url.hostname or "localhost", "PGPORT": str(url.port or 5432),
           "PGDATABASE": unquote(url.path.lstrip("/")) or "resonate"}
    if url.username:
        env["PGUSER"] = unquote(url.username)
    if "sslmode" in dict(parse_qsl(url.query)):
        env["PGSSLMODE"] = dict(parse_qsl(url.query))["sslmode"]
    return [f"{key}={value}" for key, value in env.items()]


if __name__ == "__main__":
    # The URL comes from the environment: on the command line, `ps` would show its password.
    url = os.environ["DATABASE_URL"]
    mode = sys.argv[1] if len(sys.argv) > 1 else "--flags"
    try:
        lines = {"--flags": postgres_flags, "--libpq-env": libpq_env,
                 "--password": lambda u: [password(u)]}[mode](url)
    except ValueError:  # urllib's reading of a port that is no number, say
        # not urllib's message: for a password holding an unescaped "/" it quotes the password
        raise SystemExit("DATABASE_URL cannot be read: its port is no number (a '/', '@' or "
                         "'#' in the password must be percent-encoded)") from None
    print("\n".join(lines))
