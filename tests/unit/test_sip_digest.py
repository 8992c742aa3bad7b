"""sip.digest: parsing credentials/challenges, RFC 2617 / RFC 7616 responses, verify."""

from __future__ import annotations

from sipwatch.sip.digest import (
    build_challenge,
    build_credentials,
    compute_response,
    parse_digest,
    verify,
)


def test_rfc2617_example_md5_qop_auth():
    # RFC 2617 section 3.5 example
    got = compute_response(
        "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", nc="00000001", cnonce="0a4f113b",
    )  # fmt: skip
    assert got == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_examples_md5_and_sha256():
    # RFC 7616 section 3.9.1 example
    common = dict(
        qop="auth",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    args = ("Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v")  # fmt: skip
    assert compute_response(*args, algorithm="MD5", **common) == "8ca523f5e9506fed4657c9700eebdbec"
    assert (
        compute_response(*args, algorithm="SHA-256", **common)
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_parse_authorization():
    cred = parse_digest(
        'Digest username="1001",realm="asterisk", nonce="4f8b", uri="sip:192.0.2.10", '
        'response="0a4f113b", algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"'
    )
    assert cred.scheme == "Digest"
    assert (cred.username, cred.realm, cred.nonce, cred.uri) == (
        "1001",
        "asterisk",
        "4f8b",
        "sip:192.0.2.10",
    )
    assert (cred.response, cred.algorithm, cred.qop, cred.nc, cred.cnonce) == (
        "0a4f113b",
        "MD5",
        "auth",
        "00000001",
        "c1",
    )


def test_parse_quoted_commas_and_escapes():
    chal = parse_digest('Digest realm="a, b", qop="auth,auth-int", nonce="x\\"y", stale=FALSE')
    assert chal.realm == "a, b" and chal.qop == "auth,auth-int" and chal.nonce == 'x"y'
    assert parse_digest("") is None
    odd = parse_digest('Digest username="unterminated')
    assert odd.username == "unterminated"


def test_challenge_and_credentials_round_trip():
    chal = parse_digest(build_challenge("pbx", "n0nce", opaque="op", stale=True))
    assert (chal.realm, chal.nonce, chal.qop, chal.algorithm, chal.opaque) == (
        "pbx",
        "n0nce",
        "auth",
        "MD5",
        "op",
    )
    for algorithm in ("MD5", "SHA-256", "MD5-sess", "SHA-256-sess"):
        value = build_credentials(
            "1001", "pbx", "s3cret", "REGISTER", "sip:pbx", "n0nce",
            algorithm=algorithm, qop="auth", cnonce="cn",
        )  # fmt: skip
        cred = parse_digest(value)
        assert verify(cred, "REGISTER", "s3cret"), algorithm
        assert not verify(cred, "REGISTER", "wrong"), algorithm
        assert not verify(cred, "INVITE", "s3cret"), algorithm


def test_verify_rfc2069_form_and_svcrack_quirk():
    value = build_credentials("100", "pbx", "pw", "REGISTER", "sip:pbx", "n")
    assert verify(parse_digest(value), "REGISTER", "pw")
    # svcrack: says qop=auth but sends no cnonce/nc and computes the RFC 2069 response
    quirky = parse_digest(value + ", qop=auth")
    assert verify(quirky, "REGISTER", "pw")
    assert not verify(parse_digest('Digest username="a"'), "REGISTER", "pw")
    unknown = parse_digest(value.replace("algorithm=MD5", "algorithm=ROT13"))
    assert not verify(unknown, "REGISTER", "pw")


def test_auth_int_uses_body():
    args = ("u", "r", "p", "INVITE", "sip:x", "n")
    a = compute_response(*args, qop="auth-int", nc="00000001", cnonce="c", body=b"v=0")
    b = compute_response(*args, qop="auth-int", nc="00000001", cnonce="c", body=b"v=1")
    assert a and a != b


def test_verify_refuses_non_ascii_response_without_raising():
    from sipwatch.sip.digest import parse_digest, verify

    cred = parse_digest(
        'Digest username="a", realm="r", nonce="n", uri="sip:x", response="\xe9\xe9"'
    )
    assert cred is not None and verify(cred, "REGISTER", "x") is False
