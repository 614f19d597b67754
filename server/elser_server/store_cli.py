"""`elser-store`: copy endpoints between stores, e.g. from a single node's SQLite file into a shared PostgreSQL store.

    elser-store export --data-dir data > endpoints.json
    elser-store import endpoints.json --store-url postgresql://elser@db:5432/elser --store-password-file pw

The file is ES's `GET _inference` answer (`{"endpoints": [...]}`). Which store each command uses comes from the
same `ELSER_*` environment as the server (`ELSER_STORE_URL`, `ELSER_STORE_PASSWORD_FILE`, `ELSER_DATA_DIR`); the
flags override it. An import is one transaction: every new endpoint is stored, or none. Endpoints already there
with the same definition are skipped, so an import can be repeated; one already there with another definition
stops the import before anything is written. Running replicas pick imported endpoints up at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from elser_server.core.errors import ElserError
from elser_server.core.store import EndpointStore
from elser_server.core.types import Endpoint
from elser_server.settings import Settings
from elser_server.stores import StoreConfigError, open_store


class CliError(Exception):
    pass


def _store(args: argparse.Namespace) -> EndpointStore:
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("store_url", "store_password_file", "data_dir")
        if getattr(args, name) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise CliError(str(exc)) from None
    try:
        store, shared = open_store(settings)
    except StoreConfigError as exc:
        raise CliError(str(exc)) from None
    if shared is not None:
        shared.open()
    return store


def parse_endpoints(text: str, source: str) -> list[Endpoint]:
    """The endpoints of an export file, each checked to be a whole endpoint definition."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{source}: not JSON: {exc}") from None
    items = document.get("endpoints") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise CliError(f'{source}: expected {{"endpoints": [...]}} (what `elser-store export` writes)')
    endpoints = []
    for index, item in enumerate(items):
        try:
            endpoint = Endpoint.from_dict(item)
        except (KeyError, TypeError, ValueError, AttributeError, ElserError) as exc:
            raise CliError(f"{source}: endpoints[{index}] is not an endpoint definition: {exc!r}") from None
        if endpoint.to_dict() != item:
            raise CliError(f"{source}: endpoints[{index}] has fields or values an endpoint cannot hold")
        endpoints.append(endpoint)
    ids = [e.inference_id for e in endpoints]
    if len(set(ids)) != len(ids):
        raise CliError(f"{source}: an inference_id appears twice")
    return endpoints


def export_endpoints(args: argparse.Namespace) -> None:
    store = _store(args)
    try:
        text = json.dumps({"endpoints": [e.to_dict() for e in store.load_all()]}, indent=2) + "\n"
    finally:
        store.close()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")


def import_endpoints(args: argparse.Namespace) -> None:
    source = "stdin" if args.file == "-" else args.file
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    endpoints = parse_endpoints(text, source)
    store = _store(args)
    try:
        present = {e.inference_id: e for e in store.load_all()}
        conflicts = [
            e.inference_id for e in endpoints if e.inference_id in present and present[e.inference_id] != e
        ]
        if conflicts:
            raise CliError(
                f"nothing imported: already stored with another definition: {', '.join(conflicts)} "
                "(delete them first, or leave them out of the file)"
            )
        new = [e for e in endpoints if e.inference_id not in present]
        store.insert_all(new)
    finally:
        store.close()
    print(f"imported {len(new)} endpoints, {len(endpoints) - len(new)} already there")


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store-url", help="postgresql:// URL (default: ELSER_STORE_URL; unset: SQLite)")
    parser.add_argument("--store-password-file", type=Path, help="default: ELSER_STORE_PASSWORD_FILE")
    parser.add_argument("--data-dir", type=Path, help="where the SQLite store is (default: ELSER_DATA_DIR)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="elser-store", description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write every endpoint of a store as JSON")
    _add_store_options(export)
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.set_defaults(run=export_endpoints)
    load = commands.add_parser("import", help="store the endpoints of an export file (all or none)")
    load.add_argument("file", help="an export file, or - for stdin")
    _add_store_options(load)
    load.set_defaults(run=import_endpoints)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except CliError as exc:
        sys.exit(f"elser-store: {exc}")
    except ElserError as exc:
        cause = str(exc.__cause__ or "").strip()  # the driver's words: this is the operator's terminal
        sys.exit(f"elser-store: {exc.reason}" + (f" ({cause.splitlines()[0]})" if cause else ""))


if __name__ == "__main__":
    main()
