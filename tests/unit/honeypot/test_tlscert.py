"""The TLS listener's certificate: generated once, private key protected, clear errors."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from sipwatch.honeypot.tlscert import TlsCertError, ensure_certificate, make_server_context


def test_creates_self_signed_certificate(tmp_path):
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert ensure_certificate(cert, key) is True
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    assert c.subject == c.issuer
    assert c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "sipwatch"
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["sipwatch"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert isinstance(c.public_key(), ec.EllipticCurvePublicKey)
    assert c.public_key().curve.name == "secp256r1"
    life = c.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=360) < life <= datetime.timedelta(days=366)


def test_existing_files_are_kept(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, "pbx.example.com")
    before = (cert.read_bytes(), key.read_bytes())
    assert ensure_certificate(cert, key, "other") is False
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_ip_common_name(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key, "192.0.2.7")
    c = x509.load_pem_x509_certificate(cert.read_bytes())
    san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.0.2.7") in san.get_values_for_type(x509.IPAddress)


def test_one_file_without_the_other_is_an_error(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    key.write_bytes(b"precious key")
    with pytest.raises(TlsCertError, match="exists but .*cert.pem does not"):
        ensure_certificate(cert, key)
    assert key.read_bytes() == b"precious key"
    assert not cert.exists()


def test_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TlsCertError, match="cannot write TLS certificate"):
        ensure_certificate(blocker / "cert.pem", blocker / "key.pem")


def test_server_context(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key)
    ctx = make_server_context(cert, key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_NONE


def one_line(err: pytest.ExceptionInfo[TlsCertError]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_context_errors(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key)
    with pytest.raises(TlsCertError) as err:
        make_server_context(tmp_path / "missing.pem", key)
    assert one_line(err) == (
        f"cannot read TLS certificate {tmp_path / 'missing.pem'}: No such file or directory"
    )
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(TlsCertError) as err:
        make_server_context(junk, key)
    assert one_line(err) == f"TLS certificate {junk} is not a PEM certificate"
    with pytest.raises(TlsCertError) as err:
        make_server_context(cert, junk)
    assert one_line(err) == f"TLS key {junk} is not a PEM private key"
    other_cert, other_key = tmp_path / "o.pem", tmp_path / "ok.pem"
    ensure_certificate(other_cert, other_key)
    with pytest.raises(TlsCertError) as err:
        make_server_context(cert, other_key)
    assert one_line(err) == f"TLS key {other_key} does not match certificate {cert}"


def test_encrypted_key_is_refused_without_prompting(tmp_path):
    from cryptography.hazmat.primitives import serialization

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key)
    pk = serialization.load_pem_private_key(key.read_bytes(), None)
    enc = tmp_path / "enc.pem"
    enc.write_bytes(
        pk.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(TlsCertError, match="is encrypted"):
        make_server_context(cert, enc)


def test_unreadable_key(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    ensure_certificate(cert, key)
    with pytest.raises(TlsCertError) as err:
        make_server_context(cert, tmp_path)  # a directory: unreadable, also for root
    assert one_line(err) == f"cannot read TLS key {tmp_path}: Is a directory"
