"""AudioHook upgrade signatures (monitor/ingest/signature.py), checked against the reference client's own signer."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from monitor.ingest.signature import NonceCache, authority, decode_secret, verify

PEER = Path("/work/shared/peers/audiohook-client/dist/app/audiohook")
API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SECRET = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
IDS = {"audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
       "audiohook-session-id": "e160e428-53e2-487c-977d-96989bf5c99d",
       "audiohook-correlation-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0"}
SIGNER = """
const ah = require(process.argv[1]);
const [uri, apiKey, secret, ids, created] = process.argv.slice(2);
const url = new URL(uri); const h = JSON.parse(ids);
const b = new ah.httpsignature.SignatureBuilder()
  .addComponent('@request-target', url.pathname + url.search).addComponent('@authority', url.host);
for (const k of Object.keys(h)) b.addComponent(k, h[k]);
b.addComponent('x-api-key', apiKey);
console.log(JSON.stringify(b.createSignature({keyid: apiKey, key: Buffer.from(secret, 'base64'),
                                               created: created ? Number(created) : undefined})));
"""


def signed(uri="wss://calls.example.com:443/ingest/audiohook?tenant=a", created=None, ids=IDS):
    """Headers as the reference client would send them (its own SignatureBuilder, run in node)."""
    out = subprocess.run(["node", "-e", SIGNER, str(PEER), uri, API_KEY, SECRET, json.dumps(ids), str(created or "")],
                         check=True, capture_output=True, text=True).stdout
    return {**ids, "x-api-key": API_KEY, **json.loads(out)}


pytestmark = pytest.mark.skipif(not shutil.which("node") or not PEER.exists(), reason="needs node and the peer")
KEYS = {API_KEY: decode_secret(SECRET)}
DERIVED = {"@request-target": "/ingest/audiohook?tenant=a", "@authority": "calls.example.com"}


def test_reference_signature_verifies():
    headers = signed()
    assert verify(headers, DERIVED, KEYS).ok
    # the client drops the default port from @authority; so do we when the Host header carries it
    assert authority("Calls.Example.com:443", "wss") == "calls.example.com"
    assert authority("127.0.0.1:8443", "wss") == "127.0.0.1:8443"


def test_tampering_fails():
    headers = signed()
    assert verify(headers, {**DERIVED, "@request-target": "/ingest/audiohook?tenant=b"}, KEYS).reason == \
        "the signature does not match"
    assert not verify({**headers, "audiohook-session-id": "e160e428-53e2-487c-977d-96989bf5c99e"}, DERIVED, KEYS).ok
    assert not verify(headers, DERIVED, {API_KEY: b"another secret of some length"}).ok
    assert "keyid" in verify(headers, DERIVED, {"other-key": KEYS[API_KEY]}).reason
    unsigned = {k: v for k, v in headers.items() if k not in ("signature", "signature-input")}
    assert "not signed" in verify(unsigned, DERIVED, KEYS).reason
    assert "malformed" in verify({**headers, "signature": "sig1=:not base64"}, DERIVED, KEYS).reason


def test_expired_future_and_replayed():
    old = int(time.time()) - 600
    assert "expired" in verify(signed(created=old), DERIVED, KEYS).reason
    future = int(time.time()) + 600
    assert "future" in verify(signed(created=future), DERIVED, KEYS).reason
    headers = signed()
    nonces = NonceCache(keep_s=60)
    assert verify(headers, DERIVED, KEYS, nonces=nonces).ok
    assert "replayed" in verify(headers, DERIVED, KEYS, nonces=nonces).reason


def test_must_cover_the_session_headers():
    partial = {k: v for k, v in IDS.items() if k != "audiohook-session-id"}
    headers = signed(ids=partial)
    headers["audiohook-session-id"] = IDS["audiohook-session-id"]
    assert "does not cover audiohook-session-id" in verify(headers, DERIVED, KEYS).reason


def test_secret_must_be_base64():
    with pytest.raises(ValueError):
        decode_secret("not base64!")
