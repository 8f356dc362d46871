"""Tests for m365watch.certificate: one PEM file becomes MSAL's certificate credential."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from m365watch.certificate import Certificate, load_certificate
from m365watch.errors import ConfigError
from tests.identity import NOT_AFTER, PASSWORD, cert_pem, key_pem, make_certificate, write_pem


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_load_certificate_returns_msal_credential_and_info(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert = make_certificate(rsa_key, subject="m365watch prod")
    other_key = ec.generate_private_key(ec.SECP256R1())
    chain_extra = make_certificate(other_key, subject="some CA")
    pem_path = write_pem(
        tmp_path / "app.pem", cert_pem(chain_extra), key_pem(rsa_key, PASSWORD), cert_pem(cert)
    )
    credential, info = load_certificate(Certificate(pem_path, PASSWORD))

    assert info.thumbprint.lower() == cert.fingerprint(hashes.SHA1()).hex()
    assert info.not_after == NOT_AFTER
    assert info.not_after.tzinfo is not None
    assert info.not_after.utcoffset() == timedelta(0)
    assert info.not_before == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert info.subject == "CN=m365watch prod"
    assert credential["thumbprint"] == info.thumbprint
    assert "ENCRYPTED" not in credential["private_key"]
    assert credential["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    # The app's own certificate comes first, whatever the order in the file.
    first = x509.load_pem_x509_certificate(credential["public_certificate"].encode())
    assert first == cert


def test_password_for_unencrypted_key_is_harmless(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem_path = write_pem(
        tmp_path / "app.pem", key_pem(rsa_key), cert_pem(make_certificate(rsa_key))
    )
    credential, _ = load_certificate(Certificate(pem_path, "unneeded"))
    assert credential["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


# -- certificate errors -------------------------------------------------------------


def _cert_only(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    return Certificate(write_pem(tmp_path / "app.pem", cert_pem(make_certificate(key))))


def _key_only(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    return Certificate(write_pem(tmp_path / "app.pem", key_pem(key)))


def _wrong_password(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    path = write_pem(tmp_path / "app.pem", key_pem(key, PASSWORD), cert_pem(make_certificate(key)))
    return Certificate(path, "not the " + PASSWORD)


def _no_password(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    path = write_pem(tmp_path / "app.pem", key_pem(key, PASSWORD), cert_pem(make_certificate(key)))
    return Certificate(path)


def _mismatched(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    other = ec.generate_private_key(ec.SECP256R1())
    return Certificate(
        write_pem(tmp_path / "app.pem", key_pem(key), cert_pem(make_certificate(other)))
    )


def _ec_key(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    other = ec.generate_private_key(ec.SECP256R1())
    path = write_pem(tmp_path / "app.pem", key_pem(other), cert_pem(make_certificate(other)))
    return Certificate(path)


def _missing(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    return Certificate(tmp_path / "nowhere.pem", PASSWORD)


def _garbage(tmp_path: Path, key: rsa.RSAPrivateKey) -> Certificate:
    return Certificate(write_pem(tmp_path / "app.pem", b"\x00\xffnot a pem file"))


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (_missing, "cannot read certificate file"),
        (_garbage, "no PEM private key"),
        (_cert_only, "no PEM private key"),
        (_key_only, "no PEM certificate"),
        (_wrong_password, "password is wrong"),
        (_no_password, "encrypted; set the certificate password"),
        (_mismatched, "matches its private key"),
        (_ec_key, "not an RSA key"),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_") or None,
)
def test_load_certificate_errors(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, build: Any, expected: str
) -> None:
    cert = build(tmp_path, rsa_key)
    with pytest.raises(ConfigError) as info:
        load_certificate(cert)
    message = str(info.value)
    assert expected in message
    assert str(cert.pem_path) in message
    assert "\n" not in message
    assert PASSWORD not in message
    assert "BEGIN" not in message


def test_load_reads_the_file_like_load_certificate(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem_path = write_pem(
        tmp_path / "app.pem", key_pem(rsa_key), cert_pem(make_certificate(rsa_key))
    )
    certificate = Certificate(pem_path)
    assert certificate.load() == load_certificate(certificate)
