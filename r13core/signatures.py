"""npm registry signatures: key ids, public keys, signing and the pure verifier.

The npm registry signs every version it serves: an ECDSA P-256 signature
(SHA-256, DER, base64) over ``"<name>@<version>:<integrity>"``, listed in the
version's ``dist.signatures`` as ``{keyid, sig}``; its public keys are served
at ``/-/npm/v1/keys`` as ``{keys: [{expires, keyid, keytype, scheme, key}]}``
with ``key`` the base64 DER SubjectPublicKeyInfo and ``keyid`` the key's
OpenSSH fingerprint (``"SHA256:"`` + the unpadded base64 of the SHA-256 of its
SSH wire blob; :func:`keyid_of`). npm's client (pacote, which
``npm audit signatures`` drives) checks every signature of a version: its key
must be known, must not have expired before the version's publish time
(``time[version]``), and the signature must verify. A registry that serves
keys must sign every version, or npm reports the signature as missing.

This module does that arithmetic and nothing else: no files, no network.
r13 signs its own versions with the key ring of r13core/signing_keys.py
(r13core/registry/signing.py); the uplink checks an upstream's versions with
:func:`verify_version` against the upstream's keys (r13core/upstream_keys.py)
before it serves or caches them. docs/signatures.md tells the whole story.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from r13core.errors import InvalidValue, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

# cryptography is imported where a key is used (a publish signs, npm's audit verifies),
# not here: a worker answers its first requests without it (bench/import_costs.py).

KEYTYPE: Final = "ecdsa-sha2-nistp256"
SCHEME: Final = "ecdsa-sha2-nistp256"
MAX_SIGNATURES: Final = 16
"""More signatures than this on one version is not a registry's doing: refused."""
MAX_SIG_CHARS: Final = 512
"""A base64 DER P-256 signature is at most 96 characters; anything longer is refused."""


def keyid_of(der: bytes) -> str:
    """npm's key id of a DER SubjectPublicKeyInfo: its OpenSSH fingerprint.

    ``SHA256:`` + the unpadded base64 of the SHA-256 of the key's SSH wire
    blob (``string "ecdsa-sha2-nistp256", string "nistp256", string Q``) —
    what ``ssh-keygen -l`` prints, and why the keytype is spelled the SSH way.
    (Not the SHA-256 of the DER: npm's ``SHA256:jl3bwswu...`` is the fingerprint.)
    InvalidValue unless ``der`` is a P-256 public key.
    """
    from cryptography.hazmat.primitives import serialization

    key = _load_p256(der, "key")
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _load_p256(der: bytes, what: str) -> ec.EllipticCurvePublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidValue(f"{what} is not a DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidValue(f"{what} is not an ECDSA P-256 key")
    return key


def signed_message(name: str, version: str, integrity: str) -> bytes:
    """The bytes a registry signature covers: ``name@version:integrity`` (UTF-8)."""
    return f"{name}@{version}:{integrity}".encode()


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time as npm writes them (``2025-01-29T00:00:00.000Z``), aware, UTC."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue(f"{what} {text[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@dataclass(frozen=True)
class PublicKey:
    """One entry of ``/-/npm/v1/keys``: a P-256 public key, its id and its expiry.

    ``expires`` (ISO 8601 or None) is the time after which versions published
    are no longer covered by this key: a signature on a version published at
    or after it fails, one on an older version still verifies.
    """

    keyid: str
    key: str
    expires: str | None = None
    keytype: str = KEYTYPE
    scheme: str = SCHEME

    @classmethod
    def from_der(cls, der: bytes, *, expires: str | None = None) -> PublicKey:
        """The entry for a DER SubjectPublicKeyInfo (its key id computed)."""
        return cls(keyid_of(der), base64.b64encode(der).decode(), expires)

    @classmethod
    def from_json(cls, obj: object) -> PublicKey:
        """An entry of a keys document; InvalidValue naming what is wrong.

        The key must decode to a P-256 public key whose computed id is the
        ``keyid`` given (a key listed under another key's id is refused).
        """
        if not isinstance(obj, dict):
            raise InvalidValue("a key entry must be an object")
        keyid, key, expires = obj.get("keyid"), obj.get("key"), obj.get("expires")
        keytype, scheme = obj.get("keytype", KEYTYPE), obj.get("scheme", SCHEME)
        if not isinstance(keyid, str) or not isinstance(key, str):
            raise InvalidValue("a key entry needs string keyid and key")
        if not isinstance(keytype, str) or not isinstance(scheme, str):
            raise InvalidValue(f"key {keyid[:80]!r}: keytype and scheme must be strings")
        if expires is not None:
            if not isinstance(expires, str):
                raise InvalidValue(f"key {keyid[:80]!r}: expires must be a string or null")
            parse_time(expires, f"key {keyid[:80]!r} expires")
        entry = cls(keyid, key, expires, keytype, scheme)
        if entry.usable:
            entry.public_key()  # decodes: InvalidValue if it is not a P-256 key
            if keyid_of(entry.der) != keyid:
                raise InvalidValue(f"key {keyid[:80]!r}: keyid is not the key's fingerprint")
        return entry

    def as_json(self) -> dict[str, Any]:
        """The entry as ``/-/npm/v1/keys`` lists it."""
        return {
            "expires": self.expires,
            "keyid": self.keyid,
            "keytype": self.keytype,
            "scheme": self.scheme,
            "key": self.key,
        }

    @property
    def usable(self) -> bool:
        """Whether r13 can check signatures with it (an ECDSA P-256 key)."""
        return self.keytype == KEYTYPE and self.scheme == SCHEME

    @cached_property
    def der(self) -> bytes:
        """The DER SubjectPublicKeyInfo."""
        try:
            return base64.b64decode(self.key, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidValue(f"key {self.keyid[:80]!r} is not base64") from None

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The key, decoded (cached); InvalidValue unless it is a P-256 public key."""
        loaded: ec.EllipticCurvePublicKey | None = self.__dict__.get("_loaded")
        if loaded is not None:
            return loaded
        key = _load_p256(self.der, f"key {self.keyid[:80]!r}")
        self.__dict__["_loaded"] = key
        return key

    def expired_at(self, published: datetime) -> bool:
        """Whether a version published at ``published`` is past this key's expiry."""
        return self.expires is not None and published >= parse_time(self.expires, "expires")


def parse_keys(document: object) -> list[PublicKey]:
    """The keys of a ``/-/npm/v1/keys`` document (InvalidValue if it is not one).

    Entries of another key type are kept (a client may know them) but never
    used to verify here.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidValue('a keys document is {"keys": [...]}')
    return [PublicKey.from_json(entry) for entry in document["keys"]]


def public_key_der(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a key (or of a private key's public half)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(private: ec.EllipticCurvePrivateKey, name: str, version: str, integrity: str) -> str:
    """A registry signature of ``name@version:integrity``: base64 DER ECDSA/SHA-256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    der = private.sign(signed_message(name, version, integrity), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()


def integrity_of(dist: Mapping[str, Any]) -> str:
    """The integrity a signature covers: ``dist.integrity``, else the sha1 SRI of ``shasum``.

    That is what npm's client signs and checks (``mani._integrity``): versions
    from before sha512 integrity carry only a hex sha1 ``shasum``.
    """
    integrity = dist.get("integrity")
    if isinstance(integrity, str) and integrity:
        return integrity
    shasum = dist.get("shasum")
    if isinstance(shasum, str) and len(shasum) == 40:
        try:
            return "sha1-" + base64.b64encode(bytes.fromhex(shasum)).decode()
        except ValueError:
            pass
    raise SignatureError("the version has no integrity to check a signature against", "malformed")


class KeySet:
    """Public keys by key id, for :func:`verify_version` (build once, verify many)."""

    def __init__(self, keys: Iterable[PublicKey]) -> None:
        self._by_id: dict[str, PublicKey] = {}
        for key in keys:
            self._by_id.setdefault(key.keyid, key)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, keyid: str) -> PublicKey | None:
        """The key with this id, or None."""
        return self._by_id.get(keyid)


def _signatures(dist: Mapping[str, Any], what: str) -> list[tuple[str, str]]:
    raw = dist.get("signatures")
    if raw is None or raw == []:
        raise SignatureError(f"{what} has no registry signature", "missing")
    if not isinstance(raw, list) or len(raw) > MAX_SIGNATURES:
        raise SignatureError(f"{what}: dist.signatures must be a short list", "malformed")
    out = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise SignatureError(f"{what}: a signature must be an object", "malformed")
        keyid, sig = entry.get("keyid"), entry.get("sig")
        if not isinstance(keyid, str) or not isinstance(sig, str) or len(sig) > MAX_SIG_CHARS:
            raise SignatureError(f"{what}: a signature needs string keyid and sig", "malformed")
        out.append((keyid, sig))
    return out


def verify_version(
    version_doc: Mapping[str, Any],
    keys: KeySet | Iterable[PublicKey],
    *,
    published: str | None = None,
    expected_name: str | None = None,
    expected_version: str | None = None,
) -> tuple[str, ...]:
    """Check a version document's ``dist.signatures`` as npm's client does; the key ids.

    Every signature must name a key of ``keys`` that had not expired when the
    version was ``published`` (its ``time[version]``; None skips the expiry
    check — pass it whenever the packument has it) and must verify over
    ``name@version:integrity``. ``expected_name``/``expected_version`` (the
    package and version asked for) must be the document's, so a validly signed
    document of another package cannot stand in. At least one signature is
    required. Raises :class:`~r13core.errors.SignatureError` (``reason`` says
    which check failed); pure: no I/O.
    """
    name, version = version_doc.get("name"), version_doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise SignatureError("a version document needs string name and version", "malformed")
    what = f"{name}@{version}"[:300]
    if expected_name is not None and name != expected_name:
        raise SignatureError(f"{what} is not a version of {expected_name}", "malformed")
    if expected_version is not None and version != expected_version:
        raise SignatureError(f"{what} is not version {expected_version}", "malformed")
    dist = version_doc.get("dist")
    if not isinstance(dist, Mapping):
        raise SignatureError(f"{what} has no dist", "malformed")
    signatures = _signatures(dist, what)
    message = signed_message(name, version, integrity_of(dist))
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    keyset = keys if isinstance(keys, KeySet) else KeySet(keys)
    when = None if published is None else _published(published, what)
    verified = []
    for keyid, sig in signatures:
        key = keyset.get(keyid)
        if key is None or not key.usable:
            raise SignatureError(f"{what} is signed with unknown key {keyid[:80]!r}", "unknown-key")
        if when is not None and key.expired_at(when):
            raise SignatureError(
                f"{what} was published {published} but key {keyid} expired {key.expires}",
                "expired-key",
            )
        try:
            der = base64.b64decode(sig, validate=True)
            key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature, InvalidValue):
            raise SignatureError(
                f"{what} has an invalid registry signature (key {keyid})", "invalid"
            ) from None
        verified.append(keyid)
    return tuple(verified)


def verify_upstream_version(
    version_doc: Mapping[str, Any],
    upstream_keys: KeySet | Iterable[PublicKey],
    *,
    published: str | None,
    expected_name: str,
    expected_version: str,
) -> tuple[str, ...]:
    """The uplink's rule for a proxied version: :func:`verify_version` when the upstream
    publishes keys; when it publishes none (a registry that does not sign, or one
    whose keys could not be fetched yet), nothing to check — ``()`` — as npm's
    client does. A version that fails is refused (SignatureError), never served
    unsigned."""
    keyset = upstream_keys if isinstance(upstream_keys, KeySet) else KeySet(upstream_keys)
    if not len(keyset):
        return ()
    return verify_version(
        version_doc,
        keyset,
        published=published,
        expected_name=expected_name,
        expected_version=expected_version,
    )


def _published(text: str, what: str) -> datetime:
    try:
        return parse_time(text, f"{what} publish time")
    except InvalidValue as exc:
        raise SignatureError(str(exc), "malformed") from None


__all__ = [
    "KEYTYPE",
    "SCHEME",
    "KeySet",
    "PublicKey",
    "integrity_of",
    "keyid_of",
    "parse_keys",
    "parse_time",
    "public_key_der",
    "sign",
    "signed_message",
    "verify_upstream_version",
    "verify_version",
]
