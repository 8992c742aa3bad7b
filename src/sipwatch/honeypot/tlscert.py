"""The TLS listener's certificate: a self-signed one is made when none is configured.

Attack tools do not verify certificates, so a self-signed certificate is enough for a
honeypot; operators who want a real one point the config at their own files.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365


class TlsCertError(Exception):
    """A certificate or key cannot be made or used; the message is one line for the user."""


def ensure_certificate(
    cert_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    common_name: str = "sipwatch",
) -> bool:
    """Create a self-signed certificate and its key unless both files exist.

    Returns True when new files were written. The key file is created with mode 0600.
    One of the two files without the other is an error: we never overwrite a key.
    """
    cert, key = Path(cert_path), Path(key_path)
    if cert.exists() and key.exists():
        return False
    if cert.exists() or key.exists():
        have, missing = (cert, key) if cert.exists() else (key, cert)
        raise TlsCertError(f"TLS file {have} exists but {missing} does not: give both or neither")
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem_key = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem_cert = _self_signed(private_key, common_name).public_bytes(serialization.Encoding.PEM)
    try:
        for path in (cert, key):
            path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(key, pem_key, 0o600)
        try:
            _write_new(cert, pem_cert, 0o644)
        except OSError:
            key.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise TlsCertError(
            f"cannot write TLS certificate {exc.filename or cert}: {exc.strerror}"
        ) from None
    return True


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never follow or replace something that appeared meanwhile
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # exact mode whatever the umask


def _self_signed(private_key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = []
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(common_name)))
    except ValueError:
        sans.append(x509.DNSName(common_name))
    for ip in ("127.0.0.1", "::1"):
        san = x509.IPAddress(ipaddress.ip_address(ip))
        if san not in sans:
            sans.append(san)
    now = datetime.datetime.now(datetime.UTC)
    public = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # tolerate clients' clock skew
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def make_server_context(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> ssl.SSLContext:
    """A server context for the TLS listener: TLS 1.2 or newer, no client certificate."""
    cert_pem = _read(cert_path, "certificate")
    key_pem = _read(key_path, "key")
    # checked here first: OpenSSL's own errors ("PEM lib") do not say what is wrong
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TlsCertError(f"TLS certificate {cert_path} is not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsCertError(f"TLS key {key_path} is encrypted: give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsCertError(f"TLS key {key_path} is not a PEM private key") from None
    if _spki(key.public_key()) != _spki(certs[0].public_key()):
        raise TlsCertError(f"TLS key {key_path} does not match certificate {cert_path}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.load_cert_chain(cert_path, key_path, password=_no_password)
    except (ssl.SSLError, TlsCertError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise TlsCertError(f"cannot use TLS certificate {cert_path}: {reason}") from None
    return ctx


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _no_password() -> bytes:
    raise TlsCertError("the key is encrypted")  # never prompt on a terminal


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as exc:
        raise TlsCertError(f"cannot read TLS {what} {path}: {exc.strerror}") from None
