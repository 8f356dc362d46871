"""Load an app registration's certificate credential: one PEM file, key and certificate.

This adapter wraps ``cryptography``. `load_certificate` turns the file into
MSAL's ``client_credential`` dict and public facts for status output; every
problem with the file becomes a `ConfigError` that names the file, never its
content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from m365watch import files
from m365watch.errors import ConfigError

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
# A PEM chain is a few KB; anything larger is not a certificate file.
_MAX_PEM_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Certificate:
    """A PEM file holding the app's private key and its certificate."""

    pem_path: Path
    password: str | None = field(default=None, repr=False)

    def load(self) -> tuple[dict[str, str], CertificateInfo]:
        """Read the file now: `load_certificate` for this certificate."""
        return load_certificate(self)


@dataclass(frozen=True)
class CertificateInfo:
    """Public facts about a loaded certificate, for status output and expiry warnings."""

    thumbprint: str  # SHA-1 of the DER certificate, upper-case hex as the Entra portal shows it
    not_after: datetime  # tz-aware UTC
    subject: str
    not_before: datetime  # tz-aware UTC; Entra ID refuses the certificate before it


def load_certificate(cert: Certificate) -> tuple[dict[str, str], CertificateInfo]:
    """Read a PEM file holding a private key and its certificate.

    Returns MSAL's ``client_credential`` dict (``private_key`` as unencrypted
    PKCS#8 PEM held only in memory, ``thumbprint``, ``public_certificate``) and
    a `CertificateInfo`. An encrypted key is decrypted with ``cert.password``.
    Raises `ConfigError`, naming the file but never its content, when the file
    is missing or unreadable, holds no key or no certificate, the password is
    missing or wrong, or no certificate matches the key.
    """
    path = cert.pem_path
    try:
        data = files.read_bounded(path, _MAX_PEM_BYTES)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"cannot read certificate file {path}: {reason}") from exc

    blocks = [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    key_pems = [pem for label, pem in blocks if label.endswith("PRIVATE KEY")]
    cert_pems = [pem for label, pem in blocks if label == "CERTIFICATE"]
    if not key_pems:
        raise ConfigError(
            f"certificate file {path} holds no PEM private key; "
            "put the private key and the certificate in one PEM file"
        )
    if not cert_pems:
        raise ConfigError(
            f"certificate file {path} holds no PEM certificate; "
            "put the private key and the certificate in one PEM file"
        )

    key = _load_private_key(key_pems[0], cert.password, path)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(
            f"the private key in {path} is not an RSA key; "
            "Entra ID certificate credentials need an RSA key"
        )

    try:
        certs = [x509.load_pem_x509_certificate(pem) for pem in cert_pems]
    except ValueError as exc:
        raise ConfigError(
            f"certificate file {path} holds a certificate that cannot be parsed"
        ) from exc
    # A file may carry a chain; the app's certificate is the one whose public key matches.
    public_der = _public_der(key.public_key())
    leaf = next((c for c in certs if _public_der(c.public_key()) == public_der), None)
    if leaf is None:
        raise ConfigError(f"no certificate in {path} matches its private key")
    chain = [leaf, *(c for c in certs if c is not leaf)]

    # SHA-1 is what Entra's x5t header and its portal's "Thumbprint" column use.
    thumbprint = leaf.fingerprint(hashes.SHA1()).hex().upper()
    credential = {
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii"),
        "thumbprint": thumbprint,
        "public_certificate": "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain
        ),
    }
    info = CertificateInfo(
        thumbprint=thumbprint,
        not_after=leaf.not_valid_after_utc,
        subject=leaf.subject.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
    )
    return credential, info


def _load_private_key(pem: bytes, password: str | None, path: Path) -> Any:
    secret = password.encode("utf-8") if password else None
    try:
        return serialization.load_pem_private_key(pem, password=secret)
    except TypeError:
        # cryptography raises TypeError both for "encrypted, no password" and the reverse.
        if secret is None:
            raise ConfigError(
                f"the private key in {path} is encrypted; set the certificate password"
            ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"cannot load the private key in {path}: the password is wrong or the key is damaged"
        ) from None
    # A password given for an unencrypted key does no harm: load the key without it.
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"cannot load the private key in {path}: the key is damaged") from None


def _public_der(public_key: Any) -> bytes:
    der: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der
