"""Signed tokens: only EdDSA by a trusted key, of the expected type, without critical extensions."""
import json

import pytest
from nacl.signing import SigningKey

from mikolicd.jws import (JWSError, b64url_encode, key_id, parse_trusted_keys, private_pem, public_pem,
                          read_private_pem, sign, verify, verify_self_signed)

KEY = SigningKey.generate()
KEYS = {key_id(bytes(KEY.verify_key)): KEY.verify_key}


def token(header: dict, claims: dict, key: SigningKey = KEY) -> str:
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url_encode(key.sign(f'{head}.{body}'.encode()).signature)}"


def test_a_token_signed_by_a_trusted_key_verifies():
    assert verify(sign({"a": 1}, KEY, "JWT"), KEYS, "JWT") == {"a": 1}


def test_a_header_with_critical_extensions_is_refused():
    with pytest.raises(JWSError, match="crit"):
        verify(token({"alg": "EdDSA", "kid": key_id(bytes(KEY.verify_key)), "typ": "JWT", "crit": ["exp"]}, {}),
               KEYS, "JWT")


def test_a_token_of_another_type_is_refused():
    with pytest.raises(JWSError, match="type"):
        verify(sign({}, KEY, "mikolic-refusal+jwt"), KEYS, "JWT")


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256", None])
def test_only_eddsa_is_accepted(alg):
    with pytest.raises(JWSError, match="algorithm"):
        verify(token({"alg": alg, "kid": key_id(bytes(KEY.verify_key)), "typ": "JWT"}, {}), KEYS, "JWT")


def test_a_key_nobody_trusts_is_refused():
    with pytest.raises(JWSError, match="unknown key"):
        verify(sign({}, SigningKey.generate(), "JWT"), KEYS, "JWT")


def test_a_self_signed_token_names_its_own_key():
    claims, public = verify_self_signed(sign({"n": 1}, KEY, "x+jwt", embed_key=True), "x+jwt")
    assert claims == {"n": 1} and public == bytes(KEY.verify_key)


def test_pem_keys_round_trip_and_other_keys_are_refused():
    assert bytes(read_private_pem(private_pem(KEY))) == bytes(KEY)
    assert list(parse_trusted_keys(public_pem(bytes(KEY.verify_key)), "test")) == list(KEYS)
    with pytest.raises(ValueError, match="no Ed25519 public key"):
        parse_trusted_keys("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQ==\n-----END PUBLIC KEY-----\n", "test")


def test_a_jwks_names_its_keys_by_kid():
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": b64url_encode(bytes(KEY.verify_key))}]}
    assert list(parse_trusted_keys(json.dumps(jwks), "test")) == ["k1"]
