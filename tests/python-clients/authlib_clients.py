#!/usr/bin/env python3
"""authlib (unmodified, pinned in requirements.txt) against Latchkey, driven by
tests/api/authlib_client.rs:

    python authlib_clients.py device '<plan JSON>'
    python authlib_clients.py private_key_jwt '<plan JSON>'

device (RFC 8628): plan {issuer, client_id, scope}. Reads discovery, starts a device
authorization, prints one JSON line with it, then polls the token endpoint through authlib's
OAuth2Session.fetch_token (honouring `interval`, +5 s on `slow_down`) while the test approves
at /device, and prints one JSON line with what happened.

private_key_jwt (RFC 7523): plan {issuer, client_id, private_jwk, api}. Registers authlib's
PrivateKeyJWT client authentication with aud = the issuer identifier (RFC 7523bis), gets a
client_credentials token, and also tries authlib's default aud (the token endpoint URL), which
the server must refuse; prints one JSON line.

Any unexpected error prints {"error": ...} and exits 1.
"""

import base64
import json
import sys
import time

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEADLINE = time.monotonic() + 40


def out(obj):
    print(json.dumps(obj), flush=True)


def claims(jwt):
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def discovery(issuer):
    r = requests.get(issuer + "/.well-known/openid-configuration", timeout=10)
    r.raise_for_status()
    return r.json()


def device(plan):
    meta = discovery(plan["issuer"])
    session = OAuth2Session(plan["client_id"], scope=plan["scope"], token_endpoint_auth_method="none")
    r = session.post(
        meta["device_authorization_endpoint"],
        data={"client_id": plan["client_id"], "scope": plan["scope"]},
        timeout=10,
        withhold_token=True,
    )
    r.raise_for_status()
    started = r.json()
    out(started)
    interval = started.get("interval", 5)
    seen = []
    while time.monotonic() < DEADLINE:
        time.sleep(interval)
        try:
            token = session.fetch_token(
                meta["token_endpoint"],
                grant_type=DEVICE_GRANT,
                device_code=started["device_code"],
            )
        except OAuthError as e:
            seen.append(e.error)
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                interval += 5
                continue
            out({"errors_seen": seen, "final_error": e.error})
            return
        at = claims(token["access_token"])
        out(
            {
                "errors_seen": seen,
                "token_type": token["token_type"],
                "sub": at["sub"],
                "id_token_sub": claims(token["id_token"])["sub"] if "id_token" in token else None,
                "has_refresh_token": "refresh_token" in token,
                "scope": token.get("scope"),
            }
        )
        return
    out({"error": "timed out polling"})
    sys.exit(1)


def private_key_jwt(plan):
    meta = discovery(plan["issuer"])
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    key = ECKey.import_key(plan["private_jwk"])
    result = {}
    # aud = the issuer identifier, as RFC 7523bis requires.
    session = OAuth2Session(plan["client_id"], key, token_endpoint_auth_method="private_key_jwt")
    session.register_client_auth_method(
        PrivateKeyJWT(plan["issuer"], alg="ES256", headers={"kid": "k1"})
    )
    token = session.fetch_token(
        meta["token_endpoint"], grant_type="client_credentials", resource=plan["api"]
    )
    at = claims(token["access_token"])
    result.update(sub=at["sub"], aud=at["aud"], scope=token.get("scope"))
    # A second token: a fresh assertion (new jti) each time.
    token = session.fetch_token(
        meta["token_endpoint"], grant_type="client_credentials", resource=plan["api"]
    )
    result["second_ok"] = "access_token" in token
    # authlib's default audience, the token endpoint URL: refused by the server.
    default = OAuth2Session(plan["client_id"], key, token_endpoint_auth_method="private_key_jwt")
    default.register_client_auth_method(PrivateKeyJWT(alg="ES256"))
    try:
        default.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
        result["token_endpoint_aud"] = "accepted"
    except OAuthError as e:
        result["token_endpoint_aud"] = e.error
    out(result)


def main():
    mode, plan = sys.argv[1], json.loads(sys.argv[2])
    {"device": device, "private_key_jwt": private_key_jwt}[mode](plan)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - reported to the driving test
        out({"error": f"{type(e).__name__}: {e}"})
        sys.exit(1)
