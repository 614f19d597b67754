"""Generate the committed Python gencode for protos/elser/v1 (importable as `elser.v1`).

`--third-party-only` only copies the google/api and google/rpc protos we import from the installed
googleapis-common-protos wheel into third_party/ (buf lint needs them; the BSR is not reachable here).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party"
GEN = ROOT / "gen"
GOOGLE_PROTOS = ("google/api/annotations.proto", "google/api/http.proto", "google/rpc/status.proto")


def copy_third_party() -> None:
    # google.api is a namespace package: locate the wheel's google/ through one of its modules.
    site_google = Path(annotations_pb2.__file__).resolve().parent.parent
    for name in GOOGLE_PROTOS:
        target = THIRD_PARTY / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site_google / name.removeprefix("google/"), target)


def generate() -> None:
    out = GEN / "elser" / "v1"
    # Stale outputs of renamed/removed protos must not survive a regeneration.
    for old in out.glob("*_pb2*.py*"):
        old.unlink()
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "elser" / "v1").glob("*.proto"))
    # grpc_tools ships google/protobuf/*.proto (struct, timestamp): its include dir keeps the well-known types
    # identical to the runtime's.
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{THIRD_PARTY}",
        f"-I{well_known}",
        f"--python_out={GEN}",
        f"--pyi_out={GEN}",
        f"--grpc_python_out={GEN}",
        *sources,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--third-party-only", action="store_true", help="only copy the google protos")
    ns = parser.parse_args()
    copy_third_party()
    if not ns.third_party_only:
        generate()


if __name__ == "__main__":
    main()
