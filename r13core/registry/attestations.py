"""Provenance: the Sigstore bundle ``npm publish --provenance`` sends, kept and served back.

npm (libnpmpublish) adds one attachment to the publish body beside the tarball::

    "<name>-<version>.sigstore": {"content_type": "<bundle mediaType>",
                                  "data": "<the bundle as a JSON string>",
                                  "length": <its length in UTF-16 code units>}

— ``data`` is the JSON text itself, not base64 (a base64 copy is accepted too).
:func:`check_bundle` validates it before anything is written: the name matches
the tarball's version, the media type is a Sigstore bundle's
(``application/vnd.dev.sigstore.bundle...+json``), the text is strict JSON of at
most :data:`MAX_BUNDLE` bytes whose ``mediaType`` is the attachment's, with a
DSSE envelope (``payloadType`` in-toto, base64 ``payload``, at least one
signature) and ``verificationMaterial``; the in-toto statement's first subject is
``pkg:npm/<name>@<version>`` (a scope's ``@`` as ``%40``) with the sha512 of this
very tarball — the checks npm's client makes before it trusts an attestation, so
a bundle that could never verify is refused at publish (400) rather than served.
r13 does not check the bundle's certificate chain or transparency-log entry
against Sigstore's roots: that needs Sigstore's trust root, which clients fetch
and check themselves (``npm audit signatures``).

The bundle is kept in the package document under ``attestations[version]``
(never rendered into packuments), and the version's ``dist.attestations`` says
there is one: ``{url, provenance: {predicateType}}``, the ``url`` made when
rendering (``<public URL>/-/npm/v1/attestations/<name>@<version>``), where
:func:`attestations_document` answers ``{attestations: [{predicateType,
bundle}]}`` as the npm registry does.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

from r13core.errors import InvalidPublish, InvalidValue, NotFound
from r13core.jsonsafe import loads
from r13core.names import PackageName
from r13core.storage.packages import JSONDict

MAX_BUNDLE: Final = 1024 * 1024
"""Bytes of one bundle's JSON (npm's are 4 to 10 KB: a certificate, a signature, a log entry)."""
MEDIA_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
INTOTO_PAYLOAD: Final = "application/vnd.in-toto+json"
ATTESTATIONS_PATH: Final = "/-/npm/v1/attestations/"


@dataclass(frozen=True)
class Attestation:
    """A validated provenance bundle and the predicate type of its statement."""

    predicate_type: str
    bundle: JSONDict

    def as_json(self) -> JSONDict:
        """As ``/-/npm/v1/attestations/...`` lists it."""
        return {"predicateType": self.predicate_type, "bundle": self.bundle}


def purl(name: str, version: str) -> str:
    """The package URL npm signs provenance for: ``pkg:npm/%40scope/name@1.0.0``."""
    return "pkg:npm/" + (("%40" + name[1:]) if name.startswith("@") else name) + "@" + version


def _js_length(text: str) -> int:
    """A string's length as JavaScript counts it (UTF-16 code units): npm's ``length``."""
    return len(text.encode("utf-16-le")) // 2


def _bundle_text(attachment_name: str, attachment: JSONDict) -> str:
    data, length = attachment.get("data"), attachment.get("length")
    if not isinstance(data, str):
        raise InvalidPublish(f"attachment {attachment_name!r}: data must be a string")
    if len(data) > MAX_BUNDLE * 2:
        raise InvalidPublish(f"attachment {attachment_name!r} is larger than {MAX_BUNDLE} bytes")
    text = data
    if not data.lstrip().startswith("{"):
        try:  # a base64 copy of the JSON (npm sends the JSON text itself)
            text = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise InvalidPublish(
                f"attachment {attachment_name!r}: data is neither bundle JSON nor base64"
            ) from None
    # npm's length counts the JSON text in UTF-16 units; for base64, the decoded bytes.
    if length is not None and length not in (_js_length(text), len(text.encode())):
        raise InvalidPublish(
            f"attachment {attachment_name!r}: length {length!r} is not the data's length"
        )
    if len(text.encode()) > MAX_BUNDLE:
        raise InvalidPublish(f"attachment {attachment_name!r} is larger than {MAX_BUNDLE} bytes")
    return text


def _statement(where: str, envelope: object) -> JSONDict:
    if not isinstance(envelope, dict):
        raise InvalidPublish(f"{where}: dsseEnvelope must be an object")
    if envelope.get("payloadType") != INTOTO_PAYLOAD:
        raise InvalidPublish(f"{where}: dsseEnvelope.payloadType must be {INTOTO_PAYLOAD}")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise InvalidPublish(f"{where}: dsseEnvelope.signatures must be a non-empty list")
    if not all(isinstance(s, dict) and isinstance(s.get("sig"), str) for s in signatures):
        raise InvalidPublish(f"{where}: every DSSE signature needs a sig")
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        raise InvalidPublish(f"{where}: dsseEnvelope.payload must be base64")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidPublish(f"{where}: dsseEnvelope.payload is not base64") from None
    statement = loads(raw, what=f"{where}: the in-toto statement", error=InvalidPublish)
    if not isinstance(statement, dict):
        raise InvalidPublish(f"{where}: the in-toto statement must be an object")
    return statement


def check_bundle(
    attachment_name: str,
    attachment: object,
    *,
    name: PackageName,
    version: str,
    sha512_hex: str,
) -> Attestation:
    """The ``.sigstore`` attachment of a publish, validated (InvalidPublish naming the check)."""
    key = str(name)
    expected = f"{key}-{version}.sigstore"
    if attachment_name != expected:
        raise InvalidPublish(f"attachment {attachment_name!r} should be named {expected!r}")
    if not isinstance(attachment, dict):
        raise InvalidPublish(f"attachment {attachment_name!r} must be an object")
    content_type = attachment.get("content_type")
    if not (
        isinstance(content_type, str)
        and content_type.startswith(MEDIA_PREFIX)
        and "+json" in content_type
    ):
        raise InvalidPublish(
            f"attachment {attachment_name!r}: content_type {str(content_type)[:80]!r} is not a "
            f"Sigstore bundle ({MEDIA_PREFIX}...+json)"
        )
    text = _bundle_text(attachment_name, attachment)
    bundle = loads(text.encode(), what=f"attachment {attachment_name!r}", error=InvalidPublish)
    where = f"provenance bundle {attachment_name!r}"
    if not isinstance(bundle, dict):
        raise InvalidPublish(f"{where} must be a JSON object")
    if bundle.get("mediaType") != content_type:
        raise InvalidPublish(f"{where}: mediaType is not the attachment's content_type")
    if not isinstance(bundle.get("verificationMaterial"), dict):
        raise InvalidPublish(f"{where}: verificationMaterial must be an object")
    statement = _statement(where, bundle.get("dsseEnvelope"))
    subjects = statement.get("subject")
    first = subjects[0] if isinstance(subjects, list) and subjects else None
    if not isinstance(first, dict) or not isinstance(first.get("digest"), dict):
        raise InvalidPublish(f"{where}: the statement names no subject")
    if first.get("name") != purl(key, version):
        raise InvalidPublish(
            f"{where}: the statement's subject {str(first.get('name'))[:200]!r} is not "
            f"{purl(key, version)!r}"
        )
    if first["digest"].get("sha512") != sha512_hex:
        raise InvalidPublish(f"{where}: the statement's sha512 is not the tarball's")
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type or len(predicate_type) > 512:
        raise InvalidPublish(f"{where}: the statement has no predicateType")
    return Attestation(predicate_type, bundle)


def stored_dist(predicate_type: str) -> JSONDict:
    """What a version's stored ``dist.attestations`` holds (the url is added when rendering)."""
    return {"provenance": {"predicateType": predicate_type}}


def attestations_url(public_url: str, name: str, version: str) -> str:
    """Where the version's attestations are served (npm's spelling: ``@scope%2fname@1.0.0``)."""
    return f"{public_url.rstrip('/')}{ATTESTATIONS_PATH}{name.replace('/', '%2f')}@{version}"


def rendered_dist(dist: JSONDict, public_url: str, name: str, version: str) -> JSONDict:
    """``dist`` as served: ``attestations.url`` pointing at this registry, if it has any."""
    found = dist.get("attestations")
    if not isinstance(found, dict):
        return dist
    url = attestations_url(public_url, name, version)
    return {**dist, "attestations": {**found, "url": url}}


def parse_spec(raw: str) -> tuple[PackageName, str]:
    """``name@version`` of an attestations path (``@scope%2fname@1.0.0`` or ``pkg@1.0.0``)."""
    at = raw.rfind("@")
    if at <= 0:
        raise NotFound(f"no attestations for {raw[:200]!r}: expected <name>@<version>")
    try:
        return PackageName.from_url(raw[:at]), raw[at + 1 :]
    except InvalidValue:
        raise NotFound(f"no attestations for {raw[:200]!r}") from None


def attestations_document(doc: JSONDict, name: str, version: str) -> JSONDict:
    """``{attestations: [{predicateType, bundle}]}`` of a local version; NotFound if none."""
    if version not in doc.get("versions", {}):
        raise NotFound(f"version {version!r} of {name} not found")
    found = (doc.get("attestations") or {}).get(version)
    if not found:
        raise NotFound(f"{name}@{version} has no attestations")
    return {"attestations": list(found)}


__all__ = [
    "ATTESTATIONS_PATH",
    "MAX_BUNDLE",
    "Attestation",
    "attestations_document",
    "attestations_url",
    "check_bundle",
    "parse_spec",
    "purl",
    "rendered_dist",
    "stored_dist",
]
