"""Content negotiation as ES's RestRequest does it for JSON: `application/json` and
`application/vnd.elasticsearch+json; compatible-with=N` (N in 7..9), matching compat versions on both headers,
and the response media type mirroring what was asked for."""

from __future__ import annotations

from dataclasses import dataclass

from elser_server.transport.rest.errors import RestError, rest_error

JSON = "application/json"
VND_JSON = "application/vnd.elasticsearch+json"
COMPATIBLE_VERSIONS = (9, 8, 7)


@dataclass(frozen=True)
class _MediaType:
    essence: str  # type/subtype, lower-case
    version: int | None  # compatible-with


def _parse(value: str, header: str) -> _MediaType:
    essence, *params = (part.strip() for part in value.split(";"))
    version: int | None = None
    for param in params:
        name, _, raw = param.partition("=")
        if name.strip().lower() == "compatible-with":
            try:
                version = int(raw.strip())
            except ValueError:
                raise _header_error(header) from None
    return _MediaType(essence.lower(), version)


def _header_error(headers: str, cause: str | None = None) -> RestError:
    return rest_error(
        f"Invalid media-type value on headers [{headers}]",
        "media_type_header_exception",
        caused_by=("status_exception", cause) if cause else None,
    )


def _check_version(media: _MediaType, name: str, raw: str) -> None:
    if media.version is not None and media.version not in COMPATIBLE_VERSIONS:
        versions = ", ".join(map(str, COMPATIBLE_VERSIONS[:-1])) + f" or {COMPATIBLE_VERSIONS[-1]}"
        raise _header_error(
            name, f"{name} version must be either version {versions}, but found {media.version}. {name}={raw}"
        )


def _accept(raw: str) -> _MediaType | None:
    """The first JSON-family entry of Accept; None when only wildcards or other formats are listed."""
    for entry in raw.split(","):
        media = _parse(entry, "Accept")
        if media.essence in (JSON, VND_JSON):
            return media
    return None


def negotiate(content_type: str | None, accept: str | None, has_body: bool) -> str:
    """Check both headers; return the response Content-Type. Content-Type is only checked with a body (406
    there is raised later, after routing, as ES does)."""
    accepted = _accept(accept) if accept else None
    if accepted is not None and accept is not None:
        _check_version(accepted, "Accept", accept)
    sent = _parse(content_type, "Content-Type") if has_body and content_type else None
    if sent is not None and content_type is not None:
        _check_version(sent, "Content-Type", content_type)
        if sent.essence in (JSON, VND_JSON) and accepted is not None and accepted.version != sent.version:
            raise _header_error(
                "Content-Type, Accept",
                "A compatible version is required on both Content-Type and Accept headers if either one has "
                "requested a compatible version and the compatible versions must match. "
                f"Accept={accept}, Content-Type={content_type}",
            )
    version = accepted.version if accepted is not None else sent.version if sent is not None else None
    return f"{VND_JSON};compatible-with={version}" if version is not None else JSON


def check_body_type(content_type: str | None) -> None:
    """ES's 406 for a body it cannot read."""
    if not content_type:
        raise rest_error("Content-Type header is missing", "status_exception", 406)
    if _parse(content_type, "Content-Type").essence not in (JSON, VND_JSON):
        raise rest_error(f"Content-Type header [{content_type}] is not supported", "status_exception", 406)
