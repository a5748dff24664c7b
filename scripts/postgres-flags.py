"""Turns a DATABASE_URL (postgres://user:password@host:port/db?opts) into Resonate server flags.

The password is not a flag (flags show in `ps`): `--password` prints it alone, and
scripts/resonate-serve hands it to the server in the environment variable the server reads
(AIO_SUBSYSTEMS_STOREPOSTGRES_CONFIG_PASSWORD, viper's name for the password setting).
The query string (e.g. ?sslmode=verify-full) becomes the server's --aio-store-postgres-query. The
server's Postgres driver (lib/pq) requires TLS unless told otherwise, and a local Debian cluster
has none: without an explicit sslmode, a loopback host gets sslmode=disable and any other host
keeps the driver's default, require.
"""

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


if __name__ == "__main__":
    if sys.argv[1] == "--password":
        print(password(sys.argv[2]))
    else:
        print("\n".join(postgres_flags(sys.argv[1])))
