"""OIDC bearer tokens and console sign-in, against a real issuer on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from ftguard.errors import PermissionDeniedError
from ftguard.server._oidc import (
    OidcError,
    OidcIdentity,
    OidcIssuerConfig,
    OidcVerifier,
    new_pkce_pair,
)

from .oidc_issuer import TestIssuer, s256

REDIRECT = "http://127.0.0.1:9/console/callback"


@pytest.fixture
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer() as iss:
        iss.add_user("u-alice", "alice@example.com", ["ml-team", "reviewers"])
        iss.add_user("u-bob", "bob@example.com", [])
        yield iss


def config(issuer: TestIssuer, **kw: Any) -> OidcIssuerConfig:
    base: dict[str, Any] = {
        "issuer": issuer.url,
        "audience": issuer.audience,
        "client_id": issuer.client_id,
        "group_roles": {"ml-team": ["requester", "runner"], "reviewers": ["approver", "runner"]},
    }
    return OidcIssuerConfig(**{**base, **kw})


@pytest.fixture
def verifier(issuer: TestIssuer) -> Iterator[OidcVerifier]:
    v = OidcVerifier([config(issuer)])
    yield v
    v.close()


def refused(verifier: OidcVerifier, token: str, match: str) -> OidcError:
    with pytest.raises(OidcError, match=match) as info:
        verifier.verify(token)
    assert token not in str(info.value) and token not in repr(info.value)
    assert "\n" not in str(info.value)
    return info.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
        s,
    )


# -- bearer tokens ------------------------------------------------------------------------


def test_valid_token_maps_user_groups_and_roles(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    identity = verifier.verify(issuer.mint("alice@example.com"))
    assert identity == OidcIdentity(
        issuer=issuer.url,
        subject="u-alice",
        user="alice@example.com",
        groups=["ml-team", "reviewers"],
        roles=["approver", "requester", "runner"],
    )
    bob = verifier.verify(issuer.mint("bob@example.com", omit=["groups"]))
    assert (bob.user, bob.groups, bob.roles) == ("bob@example.com", [], [])


def test_audience_list_and_custom_user_claim(issuer: TestIssuer) -> None:
    token = issuer.mint("alice@example.com", audience=["other", "ftguard"])
    assert OidcVerifier([config(issuer)]).verify(token).user == "alice@example.com"
    by_sub = OidcVerifier([config(issuer, user_claim="sub")])
    assert by_sub.verify(token).user == "u-alice"


def test_expired_token(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    refused(verifier, issuer.mint("alice@example.com", issued_at=now - 700), "expired")
    # within the 60 s leeway it still passes
    assert verifier.verify(issuer.mint("alice@example.com", issued_at=now - 330))


def test_not_yet_valid_and_issued_in_the_future(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    refused(verifier, issuer.mint("alice@example.com", not_before=now + 600), "'nbf'")
    refused(verifier, issuer.mint("alice@example.com", issued_at=now + 600), "'iat'")
    assert verifier.verify(issuer.mint("alice@example.com", not_before=now + 30))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud"])
def test_required_claims(issuer: TestIssuer, verifier: OidcVerifier, claim: str) -> None:
    refused(verifier, issuer.mint("alice@example.com", omit=[claim]), f"lacks the claim '{claim}'")


def test_wrong_audience(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    refused(verifier, issuer.mint("alice@example.com", audience="someone-else"), "'aud'")
    # an ID token (aud = client_id) is no bearer access token
    refused(verifier, issuer.mint("alice@example.com", audience=issuer.client_id), "'aud'")


def test_unknown_or_missing_issuer(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    for iss in ("https://evil.example.com", issuer.url + "/", None):
        token = issuer.mint("alice@example.com", extra_claims={"iss": iss})
        refused(verifier, token, "issuer the policy does not name")
    refused(verifier, "not-a-jwt", "not a well-formed JWT")
    refused(verifier, "a.b.c", "not a well-formed JWT")
    assert issuer.hits["/jwks"] == 0


def test_discovery_must_name_the_issuer(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    issuer.discovery_overrides["issuer"] = "https://evil.example.com"
    refused(verifier, issuer.mint("alice@example.com"), "does not name")
    assert issuer.hits["/jwks"] == 0


def test_signed_by_another_key(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    other = issuer.other_key()
    same_kid = issuer.mint(
        "alice@example.com", sign_with=other, header_overrides={"kid": issuer.key.kid}
    )
    refused(verifier, same_kid, "signature does not verify")
    refused(verifier, issuer.mint("alice@example.com", sign_with=other), "does not publish")


def test_alg_none_and_hs256_key_confusion(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    _, claims, _ = segments(issuer.mint("alice@example.com"))
    body = b64(json.dumps(claims).encode())
    for alg in ("none", "None"):
        head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": issuer.key.kid}).encode())
        refused(verifier, f"{head}.{body}.", "algorithm is not allowed")
    # HS256 "signed" with the issuer's public key as the HMAC secret
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.key.kid}).encode())
    for secret in (issuer.key.as_pem(private=False), json.dumps(issuer.jwks()).encode()):
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        refused(verifier, f"{head}.{body}.{b64(mac)}", "algorithm is not allowed")


def test_payload_edited_after_signing(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    token = issuer.mint("bob@example.com")
    head, _, sig = token.split(".")
    _, claims, _ = segments(token)
    claims.update(email="alice@example.com", groups=["reviewers"])
    forged = f"{head}.{b64(json.dumps(claims).encode())}.{sig}"
    refused(verifier, forged, "signature does not verify")


def test_user_claim_checks(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    refused(verifier, issuer.mint("alice@example.com", omit=["email"]), "no user name")
    for bad in ("", 42, "alice smith", "a/b", "x" * 129):
        token = issuer.mint("alice@example.com", extra_claims={"email": bad})
        refused(verifier, token, "'email' claim")


def test_an_unverified_email_is_refused_and_emails_are_one_name(
    issuer: TestIssuer, verifier: OidcVerifier
) -> None:
    """Finding 6 of the 2026-12-07 review: a name taken from an address nobody verified."""
    for claims in ({"email_verified": False}, {"email_verified": "true"}):
        refused(verifier, issuer.mint("alice@example.com", extra_claims=claims), "not verified")
    refused(verifier, issuer.mint("alice@example.com", omit=["email_verified"]), "not verified")
    token = issuer.mint("alice@example.com", extra_claims={"email": "Alice@Example.COM"})
    assert verifier.verify(token).user == "alice@example.com"


def test_groups_must_be_a_list_of_strings(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    for bad in ("ml-team", ["ml-team", 3], {"ml-team": True}):
        refused(verifier, issuer.mint("alice@example.com", groups=bad), "not a list of names")


def test_jwks_cached_and_refetched_once_on_rotation(
    issuer: TestIssuer, verifier: OidcVerifier
) -> None:
    for _ in range(5):
        verifier.verify(issuer.mint("alice@example.com"))
    assert issuer.hits["/jwks"] == 1
    assert issuer.hits["/.well-known/openid-configuration"] == 1
    old = issuer.mint("alice@example.com")
    issuer.rotate_key()
    for _ in range(3):
        assert verifier.verify(issuer.mint("alice@example.com")).user == "alice@example.com"
    assert issuer.hits["/jwks"] == 2
    refused(verifier, old, "does not publish")
    other = issuer.other_key()
    for _ in range(5):  # unknown kids do not amplify into JWKS fetches
        refused(verifier, issuer.mint("alice@example.com", sign_with=other), "does not publish")
    assert issuer.hits["/jwks"] == 2


def test_jwks_ttl(issuer: TestIssuer) -> None:
    verifier = OidcVerifier([config(issuer)], jwks_ttl_seconds=0.0)
    verifier.verify(issuer.mint("alice@example.com"))
    verifier.verify(issuer.mint("alice@example.com"))
    assert issuer.hits["/jwks"] == 2


def test_issuer_unreachable(issuer: TestIssuer) -> None:
    cached = OidcVerifier([config(issuer)])
    cached.verify(issuer.mint("alice@example.com"))
    token = issuer.mint("alice@example.com")
    issuer.stop()
    assert cached.verify(token).user == "alice@example.com"  # served from the cache
    fresh = OidcVerifier([config(issuer)])
    err = refused(fresh, token, "cannot reach the OIDC issuer")
    assert isinstance(err, PermissionDeniedError)


def test_issuer_answering_garbage(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    issuer.discovery_overrides["jwks_uri"] = f"{issuer.url}/nowhere"
    refused(verifier, issuer.mint("alice@example.com"), "cannot reach the OIDC issuer")


# -- configuration ------------------------------------------------------------------------


def test_config_refuses_admin_and_unknown_roles(issuer: TestIssuer) -> None:
    with pytest.raises(ValidationError, match="cannot grant admin"):
        config(issuer, group_roles={"it": ["runner", "admin"]})
    with pytest.raises(ValidationError, match="unknown roles"):
        config(issuer, group_roles={"it": ["superuser"]})


@pytest.mark.parametrize(
    "url",
    ["http://idp.example.com", "http://10.0.0.1:8080", "ftp://127.0.0.1", "https://", "idp"],
)
def test_config_refuses_insecure_issuer_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="https"):
        OidcIssuerConfig(issuer=url, audience="ftguard")


def test_config_accepts_https_and_loopback() -> None:
    for url in ("https://idp.example.com/realms/x", "http://localhost:8080", "http://[::1]:1"):
        assert OidcIssuerConfig(issuer=url, audience="ftguard").issuer == url


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_config_refuses_symmetric_or_no_algorithms(algs: list[str]) -> None:
    with pytest.raises(ValidationError):
        OidcIssuerConfig(issuer="https://idp.example.com", audience="a", algorithms=algs)


def test_config_other_limits() -> None:
    with pytest.raises(ValidationError):
        OidcIssuerConfig(issuer="https://i.example.com", audience="a", leeway_seconds=301)
    with pytest.raises(ValidationError):
        OidcIssuerConfig(issuer="https://i.example.com", audience="a", secret="x")  # type: ignore[call-arg]


def test_algorithm_not_configured(issuer: TestIssuer) -> None:
    verifier = OidcVerifier([config(issuer, algorithms=["ES256"])])
    refused(verifier, issuer.mint("alice@example.com"), "algorithm is not allowed")


# -- console sign-in: authorization code + PKCE ---------------------------------------------


def test_pkce_pair() -> None:
    verifier, challenge = new_pkce_pair()
    assert 43 <= len(verifier) <= 128
    assert challenge == s256(verifier)
    assert new_pkce_pair()[0] != verifier


def authorize(
    verifier: OidcVerifier, issuer: TestIssuer, code_verifier: str, *, login: str | None
) -> tuple[str, str]:
    url = verifier.authorization_url(
        issuer.url, redirect_uri=REDIRECT, state="st-1", nonce="n-1", code_verifier=code_verifier
    )
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge"] == [s256(code_verifier)]
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [issuer.client_id]
    assert query["response_type"] == ["code"]
    if login is not None:
        url += "&login_hint=" + login
    response = httpx.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    back = parse_qs(urlsplit(location).query)
    return back["code"][0], back["state"][0]


def test_sign_in_flow(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    code, state = authorize(verifier, issuer, code_verifier, login="bob@example.com")
    assert state == "st-1"
    identity = verifier.exchange_code(
        issuer.url, code=code, redirect_uri=REDIRECT, code_verifier=code_verifier, nonce="n-1"
    )
    assert (identity.user, identity.subject, identity.roles) == ("bob@example.com", "u-bob", [])
    # the same code does not work twice
    with pytest.raises(OidcError, match="refused the sign-in"):
        verifier.exchange_code(
            issuer.url, code=code, redirect_uri=REDIRECT, code_verifier=code_verifier, nonce="n-1"
        )


def test_sign_in_with_default_login(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    url = verifier.authorization_url(
        issuer.url, redirect_uri=REDIRECT, state="s", nonce="n", code_verifier=code_verifier
    )
    assert httpx.get(url).status_code == 400  # nobody to sign in
    issuer.default_login = "alice@example.com"
    code, _ = authorize(verifier, issuer, code_verifier, login=None)
    identity = verifier.exchange_code(
        issuer.url, code=code, redirect_uri=REDIRECT, code_verifier=code_verifier, nonce="n-1"
    )
    assert identity.roles == ["approver", "requester", "runner"]


def test_sign_in_wrong_verifier(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    code, _ = authorize(verifier, issuer, code_verifier, login="alice@example.com")
    with pytest.raises(OidcError, match="refused the sign-in"):
        verifier.exchange_code(
            issuer.url, code=code, redirect_uri=REDIRECT, code_verifier="x" * 43, nonce="n-1"
        )


def test_sign_in_wrong_redirect_uri(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    code, _ = authorize(verifier, issuer, code_verifier, login="alice@example.com")
    with pytest.raises(OidcError, match="refused the sign-in"):
        verifier.exchange_code(
            issuer.url,
            code=code,
            redirect_uri=REDIRECT + "x",
            code_verifier=code_verifier,
            nonce="n-1",
        )


def test_sign_in_nonce_mismatch(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    code, _ = authorize(verifier, issuer, code_verifier, login="alice@example.com")
    with pytest.raises(OidcError, match="'nonce'"):
        verifier.exchange_code(
            issuer.url, code=code, redirect_uri=REDIRECT, code_verifier=code_verifier, nonce="n-2"
        )


def test_sign_in_unknown_user_and_bad_requests(issuer: TestIssuer, verifier: OidcVerifier) -> None:
    code_verifier, _ = new_pkce_pair()
    url = verifier.authorization_url(
        issuer.url, redirect_uri=REDIRECT, state="s", nonce="n", code_verifier=code_verifier
    )
    assert httpx.get(url + "&login_hint=mallory@example.com").status_code == 400
    bad = url.replace("code_challenge_method=S256", "code_challenge_method=plain")
    assert httpx.get(bad + "&login_hint=alice@example.com").status_code == 400


def test_sign_in_needs_client_id_and_known_issuer(issuer: TestIssuer) -> None:
    verifier = OidcVerifier([config(issuer, client_id=None)])
    with pytest.raises(OidcError, match="no client_id"):
        verifier.authorization_url(
            issuer.url, redirect_uri=REDIRECT, state="s", nonce="n", code_verifier="v" * 43
        )
    with pytest.raises(OidcError, match="does not name"):
        verifier.authorization_url(
            "https://other.example.com",
            redirect_uri=REDIRECT,
            state="s",
            nonce="n",
            code_verifier="v" * 43,
        )


def test_token_endpoint_grants_verifiable_tokens(
    issuer: TestIssuer, verifier: OidcVerifier
) -> None:
    code_verifier, _ = new_pkce_pair()
    code, _ = authorize(verifier, issuer, code_verifier, login="alice@example.com")
    response = httpx.post(
        f"{issuer.url}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": issuer.client_id,
            "code_verifier": code_verifier,
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert verifier.verify(body["access_token"]).user == "alice@example.com"
    refused(verifier, body["id_token"], "'aud'")  # an ID token is no access token
    again = httpx.post(
        f"{issuer.url}/token", data={"grant_type": "authorization_code", "code": code}
    )
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}
