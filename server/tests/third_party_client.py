#!/usr/bin/env python3
"""A third-party annal sync client, written only from the documentation.

Sources: docs/FORMAT.md (§2-§5 envelope, JCS, payload_digest and hash; §7
entry shape; §10 and §11.5 golden vectors; §11 sync protocol and ledgers)
and server/openapi.json. No annal code is used or imported: JCS (RFC 8785),
UUIDv7 and the hashes are implemented here with the Python 3 standard
library only.

The client mints nothing: it takes a server URL and a bearer token (and the
tenant and user the token was minted for), builds a fresh device chain,
pushes it through the documented scenarios, pulls the ledger back and
verifies it per FORMAT.md §11.4.

Exit 0 with a short summary when everything matches the documentation;
exit 1 with a message naming the first mismatch.
"""

import argparse
import decimal
import hashlib
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ZERO_HASH = "0" * 64
HEX64 = re.compile(r"^[0-9a-f]{64}$")
UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CREATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RECEIVED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
MAX_SAFE = 2**53 - 1

# FORMAT.md §2: the envelope has exactly these members (two optional).
ENVELOPE_REQUIRED = {
    "format", "event_id", "tenant_id", "aggregate_type", "aggregate_id",
    "event_type", "schema_version", "payload_digest", "user_id", "device_id",
    "device_seq", "created_at", "aggregate_version", "prev_hash", "hash",
}
ENVELOPE_OPTIONAL = {"causation_id", "correlation_id"}


class Mismatch(Exception):
    """The server or the documentation disagrees with what was expected."""


def check(cond, message):
    if not cond:
        raise Mismatch(message)


# --------------------------------------------------------------------------
# JCS (RFC 8785), FORMAT.md §4
# --------------------------------------------------------------------------

_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t",
    "\n": "\\n", "\f": "\\f", "\r": "\\r",
}


def _jcs_string(s):
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if 0xD800 <= cp <= 0xDFFF:
            raise ValueError("lone surrogate in string (FORMAT.md §3.2)")
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif cp < 0x20:
            out.append("\\u%04x" % cp)
        else:
            out.append(ch)  # U+007F, U+2028, U+2029 and the rest: literally
    out.append('"')
    return "".join(out)


def _jcs_number(x):
    """ECMAScript Number.prototype.toString of a double (FORMAT.md §4)."""
    if isinstance(x, int):
        if abs(x) > MAX_SAFE:
            raise ValueError("integer beyond 2^53-1 (FORMAT.md §3.2)")
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN or Infinity (FORMAT.md §3.2)")
    if x == 0:
        return "0"  # also -0
    if x == int(x) and abs(x) > MAX_SAFE:
        raise ValueError("integral number beyond 2^53-1 (FORMAT.md §3.2)")
    sign = "-" if x < 0 else ""
    # repr() gives the shortest round-trip digits (as ECMAScript does):
    # value = int(digits) * 10**exp, then n = position of the decimal point.
    t = decimal.Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, t.digits)).lstrip("0")
    exp = t.exponent + (len(digits) - len(digits.rstrip("0")))
    digits = digits.rstrip("0")
    point = exp + len(digits)
    k, n = len(digits), point
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = ("+" if e >= 0 else "-") + str(abs(e))
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + es
    return sign + s


def jcs(value):
    """The JCS text of a JSON value (dict, list, str, int, float, bool, None)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return _jcs_number(value)
    if isinstance(value, str):
        return _jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # member names compared as arrays of UTF-16 code units: the byte
        # order of UTF-16BE is exactly that order.
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"
    raise TypeError("not a JSON value: %r" % (value,))


def jcs_bytes(value):
    return jcs(value).encode("utf-8")


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def strict_json(text):
    """Parse JSON as I-JSON: a duplicate member name is an error (§3.2)."""
    def pairs(items):
        obj = {}
        for k, v in items:
            if k in obj:
                raise Mismatch("duplicate member %r in server JSON" % k)
            obj[k] = v
        return obj
    return json.loads(text, object_pairs_hook=pairs)


# --------------------------------------------------------------------------
# Envelope hashes, FORMAT.md §4-§5 and §11.3
# --------------------------------------------------------------------------

def payload_digest(salt_bytes, payload):
    return sha256_hex(salt_bytes + jcs_bytes(payload))


def envelope_hash(envelope):
    return sha256_hex(jcs_bytes({k: v for k, v in envelope.items() if k != "hash"}))


def ledger_entry_hash(entry):
    return sha256_hex(jcs_bytes({
        "format": "annal-ledger/1",
        "tenant_id": entry["tenant_id"],
        "ledger": entry["ledger"],
        "seq": entry["seq"],
        "event_hash": entry["event_hash"],
        "outcome": entry["outcome"],
        "received_at": entry["received_at"],
        "prev": entry["prev"],
    }))


def uuid7():
    """RFC 9562 UUIDv7: 48-bit Unix ms, version 7, variant 10, random rest."""
    ms = int(time.time() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    n = ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    h = "%032x" % n
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def created_at_now():
    t = time.time()
    ms = int(t * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % ms


def check_envelope_shape(env, where):
    """FORMAT.md §2: exact members, types and formats."""
    check(isinstance(env, dict), "%s: envelope is not an object" % where)
    keys = set(env)
    check(ENVELOPE_REQUIRED <= keys, "%s: envelope lacks %s" % (where, sorted(ENVELOPE_REQUIRED - keys)))
    extra = keys - ENVELOPE_REQUIRED - ENVELOPE_OPTIONAL
    check(not extra, "%s: envelope has unknown members %s" % (where, sorted(extra)))
    check(env["format"] == "annal/1", "%s: format is %r" % (where, env["format"]))
    check(isinstance(env["event_id"], str) and UUID7.match(env["event_id"]), "%s: event_id not a UUIDv7" % where)
    for k in ("schema_version", "device_seq", "aggregate_version"):
        v = env[k]
        check(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SAFE, "%s: %s out of range" % (where, k))
    for k in ("payload_digest", "prev_hash", "hash"):
        check(isinstance(env[k], str) and HEX64.match(env[k]), "%s: %s not 64 hex digits" % (where, k))
    check(isinstance(env["created_at"], str) and CREATED_AT.match(env["created_at"]), "%s: created_at format" % where)
    for k in ("tenant_id", "aggregate_type", "aggregate_id", "event_type", "user_id", "device_id",
              "causation_id", "correlation_id"):
        if k in env:
            v = env[k]
            check(isinstance(v, str) and 1 <= len(v.encode("utf-8")) <= 256, "%s: %s not an id" % (where, k))


def verify_stored_event(ev, where):
    """§4 and §5 for a {envelope, salt, payload} entry; returns the computed hash."""
    check(isinstance(ev, dict) and set(ev) == {"envelope", "salt", "payload"},
          "%s: event is not exactly {envelope, salt, payload}: %r" % (where, sorted(ev) if isinstance(ev, dict) else ev))
    env = ev["envelope"]
    check_envelope_shape(env, where)
    check(isinstance(ev["salt"], str) and re.match(r"^[0-9a-f]{32}$", ev["salt"]), "%s: salt not 32 hex digits" % where)
    computed = envelope_hash(env)
    check(computed == env["hash"], "%s: envelope hash %s, recomputed %s" % (where, env["hash"], computed))
    digest = payload_digest(bytes.fromhex(ev["salt"]), ev["payload"])
    check(digest == env["payload_digest"],
          "%s: payload_digest %s, recomputed %s" % (where, env["payload_digest"], digest))
    return computed


# --------------------------------------------------------------------------
# Golden vectors, copied from FORMAT.md §10 and §11.5
# --------------------------------------------------------------------------

def check_golden_vectors():
    # §11.5: the first entry of a tenant ledger.
    entry = {
        "tenant_id": "study-1", "ledger": "tenant", "seq": 1,
        "event_hash": "ab" * 32, "outcome": "accepted",
        "received_at": "2025-11-22T01:51:19.123456Z", "prev": ZERO_HASH,
    }
    text = ('{"event_hash":"abababababababababababababababababababababababababababababababab",'
            '"format":"annal-ledger/1","ledger":"tenant","outcome":"accepted",'
            '"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
            '"received_at":"2025-11-22T01:51:19.123456Z","seq":1,"tenant_id":"study-1"}')
    check(jcs(dict(entry, format="annal-ledger/1")) == text, "§11.5: JCS of the ledger entry differs from the document")
    got = ledger_entry_hash(entry)
    want = "38c64335f9f0abe9516ed3e5b49f5c06e34c9e8189a5d64c426e4bac54364843"
    check(got == want, "§11.5: ledger entry hash %s, document says %s" % (got, want))

    # §10.1, §10.2 and §10.3: payload canonical form, digest, envelope hash.
    vectors = [
        ("§10.1", "11" * 16, {"severity": 3}, '{"severity":3}',
         "a6aececf818606d045c537b137f83a1d232d6540489f97ce794637e323fe378a",
         {
             "aggregate_id": "diary-42", "aggregate_type": "diary", "aggregate_version": 1,
             "created_at": "2023-11-14T22:13:20.000Z",
             "device_id": "018bcfe5-6800-7000-8000-00000000d001", "device_seq": 1,
             "event_id": "018bcfe5-6800-7000-8000-000000000001", "event_type": "symptom-recorded",
             "format": "annal/1",
             "hash": "c1f4e37970d7473aea9ffde7addc0a5c1c31941dfd279332d79f2cb14198464e",
             "payload_digest": "a6aececf818606d045c537b137f83a1d232d6540489f97ce794637e323fe378a",
             "prev_hash": ZERO_HASH, "schema_version": 1, "tenant_id": "default", "user_id": "patient-7",
         },
         '{"aggregate_id":"diary-42","aggregate_type":"diary","aggregate_version":1,"created_at":"2023-11-14T22:13:20.000Z","device_id":"018bcfe5-6800-7000-8000-00000000d001","device_seq":1,"event_id":"018bcfe5-6800-7000-8000-000000000001","event_type":"symptom-recorded","format":"annal/1","payload_digest":"a6aececf818606d045c537b137f83a1d232d6540489f97ce794637e323fe378a","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","schema_version":1,"tenant_id":"default","user_id":"patient-7"}'),  # noqa: E501
        ("§10.2", "a5" * 16,
         {"note": "Kopfschmerzen, stärker als gestern — 頭痛 😣", "severity": 7},
         '{"note":"Kopfschmerzen, stärker als gestern — 頭痛 😣","severity":7}',
         "f8bab0e4f3647c08ab3114ee8f33da4b1a2cec226f82d2ca789867d7163e996e",
         {
             "aggregate_id": "patient-Müller", "aggregate_type": "journal", "aggregate_version": 5,
             "causation_id": "018bcfe5-6800-7000-8000-000000000001", "correlation_id": "visit/2023-11-14",
             "created_at": "2023-11-14T22:13:21.007Z",
             "device_id": "018bcfe5-6800-7000-8000-00000000d002", "device_seq": 2,
             "event_id": "018bcfe5-6c00-7abc-9def-0123456789ab", "event_type": "symptôme-noté",
             "format": "annal/1",
             "hash": "ce2bcf73c9cddbf5c828f16ee36fb2740dc4ca3f506b4ddc40bd78f1340a3d14",
             "payload_digest": "f8bab0e4f3647c08ab3114ee8f33da4b1a2cec226f82d2ca789867d7163e996e",
             "prev_hash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
             "schema_version": 2, "tenant_id": "étude-東京-01", "user_id": "infirmière-Zoë",
         },
         '{"aggregate_id":"patient-Müller","aggregate_type":"journal","aggregate_version":5,"causation_id":"018bcfe5-6800-7000-8000-000000000001","correlation_id":"visit/2023-11-14","created_at":"2023-11-14T22:13:21.007Z","device_id":"018bcfe5-6800-7000-8000-00000000d002","device_seq":2,"event_id":"018bcfe5-6c00-7abc-9def-0123456789ab","event_type":"symptôme-noté","format":"annal/1","payload_digest":"f8bab0e4f3647c08ab3114ee8f33da4b1a2cec226f82d2ca789867d7163e996e","prev_hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","schema_version":2,"tenant_id":"étude-東京-01","user_id":"infirmière-Zoë"}'),  # noqa: E501
        ("§10.3", "00" * 16,
         {
             "flags": {"a": None, "b": True, "z": [], "é": ""},
             "line\nbreak": "tab\there",
             "reading": {"diastolic": 80.5, "systolic": 120, "unit": "mmHg"},
             "scores": [1, 2.5, 0, 0.1, -1e-07, 3e-12, 9007199254740991],
         },
         '{"flags":{"a":null,"b":true,"z":[],"é":""},"line\\nbreak":"tab\\there","reading":{"diastolic":80.5,"systolic":120,"unit":"mmHg"},"scores":[1,2.5,0,0.1,-1e-7,3e-12,9007199254740991]}',  # noqa: E501
         "eb9305874441adbd5347c7b2e52eca8b125b08160593af9e7b1123070f112bc3",
         {
             "aggregate_id": "bp-2023-11", "aggregate_type": "vitals", "aggregate_version": 1,
             "correlation_id": "c", "created_at": "1999-12-31T23:59:59.999Z",
             "device_id": "018bcfe5-6800-7000-8000-00000000d003", "device_seq": 9007199254740991,
             "event_id": "018bcfe5-7000-7fff-bfff-ffffffffffff", "event_type": "blood-pressure-measured",
             "format": "annal/1",
             "hash": "e8863ce156b9ceb0ecc18c1f73529defdfbddc86faae1b9a728e2d263eb2aeb4",
             "payload_digest": "eb9305874441adbd5347c7b2e52eca8b125b08160593af9e7b1123070f112bc3",
             "prev_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
             "schema_version": 3, "tenant_id": "trial-ABC", "user_id": "site-12/nurse-3",
         },
         '{"aggregate_id":"bp-2023-11","aggregate_type":"vitals","aggregate_version":1,"correlation_id":"c","created_at":"1999-12-31T23:59:59.999Z","device_id":"018bcfe5-6800-7000-8000-00000000d003","device_seq":9007199254740991,"event_id":"018bcfe5-7000-7fff-bfff-ffffffffffff","event_type":"blood-pressure-measured","format":"annal/1","payload_digest":"eb9305874441adbd5347c7b2e52eca8b125b08160593af9e7b1123070f112bc3","prev_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","schema_version":3,"tenant_id":"trial-ABC","user_id":"site-12/nurse-3"}'),  # noqa: E501
    ]
    for name, salt, payload, canonical, digest, env, env_canonical in vectors:
        check(jcs(payload) == canonical, "%s: payload canonical form\n  got  %s\n  want %s" % (name, jcs(payload), canonical))
        got = payload_digest(bytes.fromhex(salt), payload)
        check(got == digest, "%s: payload_digest %s, document says %s" % (name, got, digest))
        check_envelope_shape(env, name)
        without = {k: v for k, v in env.items() if k != "hash"}
        check(jcs(without) == env_canonical, "%s: envelope canonical bytes differ from the document" % name)
        got = envelope_hash(env)
        check(got == env["hash"], "%s: envelope hash %s, document says %s" % (name, got, env["hash"]))
    return 1 + len(vectors)


# --------------------------------------------------------------------------
# HTTP (server/openapi.json)
# --------------------------------------------------------------------------

class Api:
    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token
        self.requests = 0

    def _call(self, method, path, body=None):
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            raise Mismatch("%s %s: HTTP %d %s" % (method, path, e.code, text))
        except urllib.error.URLError as e:
            raise Mismatch("%s %s: %s" % (method, path, e.reason))
        check(status == 200, "%s %s: HTTP %d" % (method, path, status))
        return strict_json(text)

    def push(self, events, atomic=False):
        resp = self._call("POST", "/v1/events", {"atomic": atomic, "events": events})
        check(isinstance(resp, dict) and isinstance(resp.get("results"), list) and isinstance(resp.get("committed"), bool),
              "push: response is not a PushResponse: %r" % (resp,))
        check(len(resp["results"]) == len(events),
              "push: %d results for %d events" % (len(resp["results"]), len(events)))
        for i, (r, ev) in enumerate(zip(resp["results"], events)):
            check(r.get("index") == i, "push: result %d has index %r" % (i, r.get("index")))
            if "event_id" in r:
                check(r["event_id"] == ev["envelope"]["event_id"], "push: result %d names event %r" % (i, r["event_id"]))
        return resp

    def pull(self, after, limit, extra=None):
        q = {"after": after, "limit": limit}
        q.update(extra or {})
        return self._call("GET", "/v1/events?" + urllib.parse.urlencode(q))

    def public(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as resp:
            return strict_json(resp.read().decode("utf-8"))


def check_receipt(r, where):
    check(isinstance(r, dict), "%s: no receipt" % where)
    need = {"server_seq", "user_seq", "ledger_hash", "user_ledger_hash", "received_at"}
    check(need <= set(r), "%s: receipt lacks %s" % (where, sorted(need - set(r))))
    for k in ("server_seq", "user_seq"):
        check(isinstance(r[k], int) and r[k] >= 1, "%s: receipt %s = %r" % (where, k, r[k]))
    for k in ("ledger_hash", "user_ledger_hash"):
        check(isinstance(r[k], str) and HEX64.match(r[k]), "%s: receipt %s = %r" % (where, k, r[k]))
    check(isinstance(r["received_at"], str) and RECEIVED_AT.match(r["received_at"]),
          "%s: receipt received_at %r is not YYYY-MM-DDTHH:MM:SS.ssssssZ (§11.3)" % (where, r["received_at"]))


# --------------------------------------------------------------------------
# A device (FORMAT.md §1-§5)
# --------------------------------------------------------------------------

class Device:
    def __init__(self, tenant, user):
        self.tenant = tenant
        self.user = user
        self.device_id = uuid7()  # "annal generates a UUIDv7" (§2)
        self.seq = 0
        self.prev = ZERO_HASH

    def make(self, aggregate_id, version, payload, link=True, **optional):
        """The next event of this device's chain as {envelope, salt, payload}.

        With link=False the chain position is not consumed (to build an event
        that is then deliberately skipped or altered by the caller)."""
        salt = os.urandom(16)
        env = {
            "format": "annal/1",
            "event_id": uuid7(),
            "tenant_id": self.tenant,
            "aggregate_type": "tp-diary",
            "aggregate_id": aggregate_id,
            "event_type": "tp-note-recorded",
            "schema_version": 1,
            "payload_digest": payload_digest(salt, payload),
            "user_id": self.user,
            "device_id": self.device_id,
            "device_seq": self.seq + 1,
            "created_at": created_at_now(),
            "aggregate_version": version,
            "prev_hash": self.prev,
        }
        env.update(optional)
        env["hash"] = envelope_hash(env)
        if link:
            self.seq += 1
            self.prev = env["hash"]
        return {"envelope": env, "salt": salt.hex(), "payload": payload}


def expect(result, status, where):
    check(result["status"] == status, "%s: status %r, expected %r (result %s)" % (
        where, result["status"], status, json.dumps(result, ensure_ascii=False)))


# --------------------------------------------------------------------------
# Ledger verification (FORMAT.md §11.4)
# --------------------------------------------------------------------------

def pull_and_verify(api, tenant, ledger, limit):
    """Pull the whole ledger from (0, 64 zeros), verifying every item."""
    checkpoint = (0, ZERO_HASH)
    items, pages = [], 0
    while True:
        page = api.pull(checkpoint[0], limit)
        pages += 1
        check(isinstance(page, dict) and {"ledger", "items", "next_after", "has_more"} <= set(page),
              "pull: response is not a PullResponse: %r" % (page,))
        check(page["ledger"] == ledger, "pull: ledger %r, expected %r" % (page["ledger"], ledger))
        check(len(page["items"]) <= limit, "pull: %d items for limit %d" % (len(page["items"]), limit))
        for item in page["items"]:
            checkpoint = verify_item(item, tenant, ledger, checkpoint)
            items.append(item)
        check(page["next_after"] == checkpoint[0],
              "pull: next_after %r but the last verified seq is %d" % (page["next_after"], checkpoint[0]))
        if not page["has_more"]:
            break
        check(page["items"], "pull: has_more with an empty page")
    return items, pages, checkpoint


def verify_item(item, tenant, ledger, checkpoint):
    seq, prev = checkpoint
    check(isinstance(item, dict) and "entry" in item and "receipt" in item, "pull: item without entry/receipt")
    e = item["entry"]
    where = "%s seq %s" % (ledger, e.get("seq"))
    need = {"tenant_id", "ledger", "seq", "event_hash", "outcome", "received_at", "prev", "hash"}
    check(need <= set(e), "%s: entry lacks %s" % (where, sorted(need - set(e))))
    # 1. tenant and ledger
    check(e["tenant_id"] == tenant, "%s: tenant_id %r, expected %r" % (where, e["tenant_id"], tenant))
    check(e["ledger"] == ledger, "%s: ledger %r, expected %r" % (where, e["ledger"], ledger))
    # 2. continuity
    check(e["seq"] == seq + 1, "%s: expected seq %d after checkpoint" % (where, seq + 1))
    check(e["prev"] == prev, "%s: prev %s is not the checkpoint hash %s" % (where, e["prev"], prev))
    # 3. entry hash (§11.3)
    check(e["outcome"] in ("accepted", "conflict", "quarantined"), "%s: outcome %r" % (where, e["outcome"]))
    check(RECEIVED_AT.match(e["received_at"]), "%s: received_at %r" % (where, e["received_at"]))
    got = ledger_entry_hash(e)
    check(got == e["hash"], "%s: entry hash %s, recomputed %s" % (where, e["hash"], got))
    # 4. the event: §5 and §4, computed hash == entry.event_hash
    if "event" in item:
        computed = verify_stored_event(item["event"], where)
        check(computed == e["event_hash"], "%s: event hash %s but entry.event_hash %s" % (where, computed, e["event_hash"]))
    # the item's receipt is this entry's position in both ledgers (§11.3)
    r = item["receipt"]
    check_receipt(r, where)
    check(r["received_at"] == e["received_at"], "%s: receipt received_at differs from entry" % where)
    if ledger == "tenant":
        check((r["server_seq"], r["ledger_hash"]) == (e["seq"], e["hash"]), "%s: receipt server_seq/ledger_hash differ from entry" % where)
    else:
        check((r["user_seq"], r["user_ledger_hash"]) == (e["seq"], e["hash"]), "%s: receipt user_seq/user_ledger_hash differ from entry" % where)
    return e["seq"], e["hash"]


def item_event_id(item):
    if "event" in item:
        return item["event"]["envelope"]["event_id"]
    q = item.get("quarantine") or {}
    sub = q.get("submitted")
    if isinstance(sub, dict) and isinstance(sub.get("envelope"), dict):
        return sub["envelope"].get("event_id")
    return None


# --------------------------------------------------------------------------
# The scenarios
# --------------------------------------------------------------------------

def run(args):
    t0 = time.monotonic()
    vectors = check_golden_vectors()

    api = Api(args.url, args.token)
    health = api.public("/v1/health")
    check(health.get("status") == "ok", "health: %r" % (health,))
    schema = api.public("/v1/schema")
    check(isinstance(schema.get("max_schema_version"), dict), "schema: %r" % (schema,))

    tenant, user, n = args.tenant, args.user, args.events
    receipts = {}       # event_id -> receipt from the push
    expected = {}       # event_id -> (outcome, computed hash) expected in the ledgers
    dev = Device(tenant, user)
    agg = "tp-" + uuid7()
    version = 0

    def record(ev, result, outcome):
        check_receipt(result.get("receipt"), "push %s" % ev["envelope"]["event_id"])
        receipts[ev["envelope"]["event_id"]] = result["receipt"]
        expected[ev["envelope"]["event_id"]] = (outcome, envelope_hash(ev["envelope"]))

    # 1. a fresh chain of n events, all accepted
    chain = []
    for i in range(n):
        version += 1
        chain.append(dev.make(agg, version, {"note": "entry %d — ü 😣" % (i + 1), "n": i + 1}))
    resp = api.push(chain)
    check(resp["committed"] is True, "push: committed is %r" % resp["committed"])
    for ev, r in zip(chain, resp["results"]):
        expect(r, "accepted", "first push, device_seq %d" % ev["envelope"]["device_seq"])
        record(ev, r, "accepted")
    seqs = [receipts[ev["envelope"]["event_id"]]["user_seq"] for ev in chain]
    check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "first push: user_seq not increasing: %r" % seqs)

    # 2. the same batch again: all duplicate with the original receipts
    resp = api.push(chain)
    for ev, r in zip(chain, resp["results"]):
        where = "replayed push, device_seq %d" % ev["envelope"]["device_seq"]
        expect(r, "duplicate", where)
        check(r.get("receipt") == receipts[ev["envelope"]["event_id"]],
              "%s: receipt %r differs from the original %r" % (where, r.get("receipt"), receipts[ev["envelope"]["event_id"]]))

    # 3. a wrong hash: quarantined HASH_MISMATCH; the next event (linked to
    #    the claimed hash, as the device recorded it) is still accepted
    version += 1
    bad = dev.make(agg, version, {"note": "wrong hash"}, link=False)
    computed_bad = bad["envelope"]["hash"]
    claimed_bad = ("f" if computed_bad[0] != "f" else "e") + computed_bad[1:]
    bad["envelope"]["hash"] = claimed_bad
    dev.seq += 1
    dev.prev = claimed_bad
    version += 1
    after_bad = dev.make(agg, version, {"note": "after the wrong hash"})
    resp = api.push([bad, after_bad])
    r_bad, r_next = resp["results"]
    expect(r_bad, "quarantined", "wrong-hash event")
    check(r_bad.get("code") == "HASH_MISMATCH", "wrong-hash event: code %r, expected HASH_MISMATCH" % r_bad.get("code"))
    record(bad, r_bad, "quarantined")
    expect(r_next, "accepted", "event after the wrong-hash event (prev_hash = claimed hash)")
    record(after_bad, r_next, "accepted")
    # §11.2 (2): prev_hash may also be the last event's *computed* hash.
    dev2 = Device(tenant, user)
    bad2 = dev2.make(agg + "-2", 1, {"note": "wrong hash, device 2"}, link=False)
    computed_bad2 = bad2["envelope"]["hash"]
    bad2["envelope"]["hash"] = ("f" if computed_bad2[0] != "f" else "e") + computed_bad2[1:]
    dev2.seq, dev2.prev = 1, computed_bad2
    next2 = dev2.make(agg + "-2", 2, {"note": "linked to the computed hash"})
    resp = api.push([bad2, next2])
    expect(resp["results"][0], "quarantined", "device 2 wrong-hash event")
    check(resp["results"][0].get("code") == "HASH_MISMATCH", "device 2: code %r" % resp["results"][0].get("code"))
    record(bad2, resp["results"][0], "quarantined")
    expect(resp["results"][1], "accepted", "device 2 event after it (prev_hash = computed hash)")
    record(next2, resp["results"][1], "accepted")
    # replaying the quarantined event: §11.2 step (1), same claimed and
    # computed hash, is a duplicate with the original receipt
    r = api.push([bad])["results"][0]
    expect(r, "duplicate", "replayed wrong-hash event")
    check(r.get("receipt") == receipts[bad["envelope"]["event_id"]],
          "replayed wrong-hash event: receipt %r differs from the original" % (r.get("receipt"),))

    # 4. a skipped device_seq: missing with missing_device_seq, then resend
    version += 1
    e_a = dev.make(agg, version, {"note": "before the gap"})
    gap_seq = dev.seq + 1
    rest = []
    for i in range(3):
        version += 1
        rest.append(dev.make(agg, version, {"note": "gap %d" % i}))
    resp = api.push([e_a] + rest[1:])  # rest[0] (device_seq gap_seq) left out
    expect(resp["results"][0], "accepted", "event before the gap")
    record(e_a, resp["results"][0], "accepted")
    for ev, r in zip(rest[1:], resp["results"][1:]):
        where = "event after the gap, device_seq %d" % ev["envelope"]["device_seq"]
        expect(r, "missing", where)
        check(r.get("missing_device_seq") == gap_seq,
              "%s: missing_device_seq %r, expected %d" % (where, r.get("missing_device_seq"), gap_seq))
        check(r.get("code") == "MISSING_DEVICE_SEQ", "%s: code %r, expected MISSING_DEVICE_SEQ" % (where, r.get("code")))
        check("receipt" not in r, "%s: a missing event has a receipt" % where)
    resp = api.push(rest)  # resend from missing_device_seq
    for ev, r in zip(rest, resp["results"]):
        expect(r, "accepted", "resent event, device_seq %d" % ev["envelope"]["device_seq"])
        record(ev, r, "accepted")

    # 5. a conflict: another device writes a version the aggregate already has
    dev3 = Device(tenant, user)
    clash = dev3.make(agg, 1, {"note": "concurrent edit"})
    r = api.push([clash])["results"][0]
    expect(r, "conflict", "event with an existing aggregate_version")
    check(chain[0]["envelope"]["event_id"] in (r.get("conflicts_with") or []),
          "conflict: conflicts_with %r does not name %s" % (r.get("conflicts_with"), chain[0]["envelope"]["event_id"]))
    record(clash, r, "conflict")

    # 6. pull the user ledger and verify it from (0, 64 zeros)
    ledger = "user:" + user
    items, pages, head = pull_and_verify(api, tenant, ledger, args.page_size)
    seen = {}
    for item in items:
        eid = item_event_id(item)
        if eid in expected:
            check(eid not in seen, "%s: event %s entered twice" % (ledger, eid))
            seen[eid] = item
    check(set(seen) == set(expected), "%s: events pushed but not in the ledger: %s" % (ledger, sorted(set(expected) - set(seen))))
    for eid, item in seen.items():
        outcome, computed = expected[eid]
        where = "%s seq %d (event %s)" % (ledger, item["entry"]["seq"], eid)
        check(item["entry"]["outcome"] == outcome, "%s: outcome %r, expected %r" % (where, item["entry"]["outcome"], outcome))
        check(item["entry"]["event_hash"] == computed, "%s: event_hash %s, computed %s" % (where, item["entry"]["event_hash"], computed))
        check(item["receipt"] == receipts[eid], "%s: pulled receipt %r differs from the push receipt %r" % (where, item["receipt"], receipts[eid]))
        check((item["entry"]["seq"], item["entry"]["hash"]) == (receipts[eid]["user_seq"], receipts[eid]["user_ledger_hash"]),
              "%s: entry differs from the push receipt" % where)
        if outcome == "quarantined":
            q = item.get("quarantine")
            check(isinstance(q, dict) and q.get("code") == "HASH_MISMATCH", "%s: quarantine %r" % (where, q))
            sub = q.get("submitted")
            check(isinstance(sub, dict) and sub.get("envelope", {}).get("hash") != computed,
                  "%s: quarantine.submitted is not the pushed event" % where)
            check(q.get("claimed_hash") == sub["envelope"]["hash"],
                  "%s: quarantine.claimed_hash %r, pushed %r" % (where, q.get("claimed_hash"), sub["envelope"]["hash"]))
        else:
            check("event" in item, "%s: %s item without event" % (where, outcome))
        if outcome == "conflict":
            check(item.get("conflicts_with"), "%s: conflict item without conflicts_with" % where)
    # paging is consistent: one big page gives the same entries
    whole = api.pull(0, 1000)
    first = [i["entry"] for i in whole["items"]][:len(items)]
    check(first == [i["entry"] for i in items], "%s: one page of 1000 differs from the paged pull" % ledger)

    # 7. optionally the tenant ledger, with a tenant-scope token
    tenant_summary = ""
    if args.tenant_token:
        tapi = Api(args.url, args.tenant_token)
        titems, tpages, thead = pull_and_verify(tapi, tenant, "tenant", args.page_size)
        tseen = {item_event_id(i): i for i in titems if item_event_id(i) in expected}
        check(set(tseen) == set(expected), "tenant ledger: events missing: %s" % sorted(set(expected) - set(tseen)))
        for eid, item in tseen.items():
            check(item["receipt"] == receipts[eid], "tenant ledger: receipt of %s differs from the push receipt" % eid)
            check((item["entry"]["seq"], item["entry"]["hash"]) == (receipts[eid]["server_seq"], receipts[eid]["ledger_hash"]),
                  "tenant ledger: entry of %s differs from the push receipt" % eid)
            check(item["entry"]["event_hash"] == seen[eid]["entry"]["event_hash"], "tenant ledger: event_hash of %s" % eid)
        api.requests += tapi.requests
        tenant_summary = "; tenant ledger %d entries in %d pages verified to seq %d" % (len(titems), tpages, thead[0])

    elapsed = time.monotonic() - t0
    print("third-party client: OK")
    print("  golden vectors: %d (§10.1-§10.3, §11.5)" % vectors)
    print("  pushed %d events entered (%d accepted, %d quarantined, %d conflict), replays duplicate, gap resent" % (
        len(expected), sum(1 for o, _ in expected.values() if o == "accepted"),
        sum(1 for o, _ in expected.values() if o == "quarantined"),
        sum(1 for o, _ in expected.values() if o == "conflict")))
    print("  %s: %d entries in %d pages of %d verified to seq %d%s" % (
        ledger, len(items), pages, args.page_size, head[0], tenant_summary))
    print("  %d HTTP requests, %.2fs" % (api.requests, elapsed))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:8787")
    p.add_argument("--token", required=True, help="bearer token (scope own) for --tenant/--user")
    p.add_argument("--tenant", required=True, help="the token's tenant claim")
    p.add_argument("--user", required=True, help="the token's sub claim")
    p.add_argument("--tenant-token", help="optional scope-tenant token: also verify the tenant ledger")
    p.add_argument("--events", type=int, default=5, help="length of the first chain (default 5)")
    p.add_argument("--page-size", type=int, default=3, help="pull limit, small to exercise paging (default 3)")
    args = p.parse_args()
    try:
        run(args)
    except Mismatch as e:
        print("third-party client: FAILED: %s" % e, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
