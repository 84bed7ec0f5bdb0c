#!/usr/bin/env python3
"""Interop checks for CI: drives a kgen-gateway started with --sandbox through the Python stubs.

    python interop.py --target 127.0.0.1:50051 [--user-id interop-py-<random>]

Prints one line per case (`[python] PASS <case>` or `[python] FAIL <case>: <why>`) and a summary
`[python] N passed, N failed`; exits 1 when any case failed. The sandbox facts checked here are in docs/sandbox.md
and src/sandbox/mod.rs.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import uuid

import grpc

import client  # the shared helpers: stubs, error decoding, Go time parsing, JWT decoding
from client import session_pb2

LANG = "python"
DOMAIN = "kgen-gateway"
# What the embedded sandbox (always client id `sandbox-client`) calls the game: `SANDBOX_` + the client id upper-cased.
DEFAULT_CLIENT_NAME = "SANDBOX_SANDBOX_CLIENT"

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
WALLET_RE = re.compile(r"^0x[0-9a-f]{40}$")
CLIENT_ID_RE = re.compile(r"^[0-9]{8}$")
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
GO_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$")
# Fields the sandbox always leaves empty.
EMPTY_FIELDS = (
    "name", "username", "email", "device_id", "phonenumber", "date_joined", "playertag", "location",
    "location_name", "device_model", "screen_height", "screen_width", "os_name", "os_version", "browser_name",
    "indigg_wallet_address", "linked_phone",
)


class CheckFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def expect_eq(actual, expected, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: got {actual!r}, want {expected!r}")


def check_token(token: str, namespaced: str, name: str) -> None:
    parts = token.split(".")
    expect_eq(len(parts), 3, f"{name} parts")
    for part in parts:
        expect(bool(B64URL_RE.match(part)), f"{name}: a part is not unpadded base64url")
    try:
        header = client.decode_jwt_part(parts[0])
        payload = client.decode_jwt_part(parts[1])
    except ValueError as exc:
        raise CheckFailed(f"{name}: header/payload is not base64url JSON ({exc})") from exc
    expect(isinstance(header, dict) and "alg" in header, f"{name}: header has no alg")
    expect_eq(payload.get("sub"), namespaced, f"{name} payload sub")


def check_session(s: session_pb2.CreateSessionResponse, user_id: str, client_name: str, new_user: bool) -> set:
    """Checks every field against the sandbox facts; returns the names of the fields checked."""
    checked = set()

    def field(name):
        checked.add(name)
        return getattr(s, name)

    expect(bool(UUID_RE.match(field("session_id"))), f"session_id is not a UUID: {s.session_id!r}")
    expect_eq(field("user_id"), user_id, "user_id")
    for name in EMPTY_FIELDS:
        expect_eq(field(name), "", name)
    expect(0 <= field("level") <= 49, f"level out of 0..=49: {s.level}")
    rank = field("rank")
    expect(0 <= rank <= 2550 and rank % 10 == 0, f"rank not a multiple of 10 in 0..=2550: {rank}")
    checked.add("indigg_id")
    expect(not s.HasField("indigg_id"), f"indigg_id is set: {s.indigg_id!r}")
    tpcid = field("third_party_client_id")
    expect(bool(CLIENT_ID_RE.match(tpcid)), f"third_party_client_id is not 8 digits: {tpcid!r}")
    expect_eq(field("third_party_client_name"), client_name, "third_party_client_name")
    namespaced = field("namespaced_third_party_user_id")
    expect_eq(namespaced, f"{tpcid}#{user_id}", "namespaced_third_party_user_id")
    expect(bool(WALLET_RE.match(field("wallet_address"))), f"wallet_address: {s.wallet_address!r}")
    expect_eq(field("is_new_user"), new_user, "is_new_user")
    check_token(field("access_token"), namespaced, "access_token")
    check_token(field("refresh_token"), namespaced, "refresh_token")
    start = field("session_start_time")
    expect(bool(GO_TIME_RE.match(start)), f"session_start_time not in Go's format: {start!r}")
    seconds, nanos = client.parse_go_time(start)
    expect(abs(seconds - time.time()) < 300, f"session_start_time is not now: {start!r}")
    checked.add("session_started_at")
    expect(s.HasField("session_started_at"), "session_started_at is unset")
    got = (s.session_started_at.seconds, s.session_started_at.nanos)
    expect_eq(got, (seconds, nanos), f"session_started_at vs session_start_time {start!r}")
    return checked


def expect_status(call, code: grpc.StatusCode) -> client.ErrorDetails:
    """Runs `call`, which must fail with `code`; returns its decoded details."""
    try:
        call()
    except grpc.RpcError as error:
        details = client.decode_error(error)
        expect(details.code == code, f"status: got {details.code.name} ({details.message}), want {code.name}")
        return details
    raise CheckFailed(f"the call succeeded, want {code.name}")


def expect_error_info(details: client.ErrorDetails, reason: str) -> None:
    expect(details.has_status_details, "no grpc-status-details-bin trailer")
    info = details.error_info
    expect(info is not None, "no ErrorInfo in the details")
    expect_eq(info.reason, reason, "ErrorInfo.reason")
    expect_eq(info.domain, DOMAIN, "ErrorInfo.domain")


def check_batch_answer(answer, user_id: str, client_name: str) -> str:
    """Checks one batch answer against what CreateSession answers for `user_id` (see BATCH_CASES); returns the
    outcome's name."""
    expect_eq(answer.user_id, user_id, "answer user_id")
    outcome = answer.WhichOneof("result")
    if user_id.strip() == "":
        expect_eq(outcome, "error", f"outcome for {user_id!r}")
        d = client.decode_status(answer.error)
        expect_eq(d.code, grpc.StatusCode.INVALID_ARGUMENT, f"code for {user_id!r}")
        expect_error_info(d, "INVALID_USER_ID")
        expect(d.bad_request is not None, "no BadRequest in the item's details")
        expect_eq([v.field for v in d.bad_request.field_violations], ["user_id"], "BadRequest field violations")
        return "INVALID_ARGUMENT"
    if user_id == "fault:status:404":
        expect_eq(outcome, "error", f"outcome for {user_id!r}")
        d = client.decode_status(answer.error)
        expect_eq(d.code, grpc.StatusCode.NOT_FOUND, f"code for {user_id!r}")
        expect_error_info(d, "UPSTREAM_NOT_FOUND")
        expect_eq(dict(d.error_info.metadata).get("upstream_status"), "404", "ErrorInfo.metadata upstream_status")
        return "NOT_FOUND"
    expect_eq(outcome, "session", f"outcome for {user_id!r}")
    check_session(answer.session, user_id, client_name, new_user=True)
    return "session"


def batch_user_ids(prefix: str) -> list[str]:
    """Five user ids: three new gamers, an invalid (empty) one, and an injected 404."""
    return [f"{prefix}-0", "", f"{prefix}-1", "fault:status:404", f"{prefix}-2"]


def main() -> int:
    parser = argparse.ArgumentParser(description="kgen-gateway interop checks (Python)")
    parser.add_argument("--target", required=True, help="HOST:PORT of a gateway running with --sandbox")
    parser.add_argument("--user-id", default=f"interop-py-{uuid.uuid4().hex[:12]}", help="a fresh user id")
    parser.add_argument(
        "--expect-client-name",
        default=os.environ.get("INTEROP_EXPECT_CLIENT_NAME", DEFAULT_CLIENT_NAME),
        help="the sandbox's third_party_client_name",
    )
    args = parser.parse_args()
    user_id = args.user_id
    results = {"passed": 0, "failed": 0}

    def case(name, fn):
        started = time.monotonic()
        try:
            note = fn()
        except CheckFailed as exc:
            results["failed"] += 1
            print(f"[{LANG}] FAIL {name}: {exc}", flush=True)
        except Exception as exc:  # an unexpected error is a failed case, not a crash
            results["failed"] += 1
            print(f"[{LANG}] FAIL {name}: unexpected {type(exc).__name__}: {exc}", flush=True)
        else:
            results["passed"] += 1
            elapsed = (time.monotonic() - started) * 1000
            print(f"[{LANG}] PASS {name} ({elapsed:.0f} ms){': ' + note if note else ''}", flush=True)

    with client.connect(args.target) as channel:
        first = {}

        def success_first():
            s = client.create_session(channel, user_id, 10)
            checked = check_session(s, user_id, args.expect_client_name, new_user=True)
            all_fields = {f.name for f in s.DESCRIPTOR.fields}
            expect_eq(sorted(all_fields - checked), [], "response fields without a check")
            first["session"] = s
            return f"user_id={user_id}, all {len(all_fields)} fields checked"

        def success_repeat():
            expect("session" in first, "the first call failed")
            s = client.create_session(channel, user_id, 10)
            check_session(s, user_id, args.expect_client_name, new_user=False)
            expect_eq(s.wallet_address, first["session"].wallet_address, "wallet_address on the second call")
            expect(s.session_id != first["session"].session_id, "session_id is not fresh on the second call")
            return "is_new_user false, same wallet_address, fresh session_id"

        def invalid(user):
            def run():
                d = expect_status(lambda: client.create_session(channel, user, 10), grpc.StatusCode.INVALID_ARGUMENT)
                expect_error_info(d, "INVALID_USER_ID")
                expect(d.bad_request is not None, "no BadRequest in the details")
                fields = [v.field for v in d.bad_request.field_violations]
                expect_eq(fields, ["user_id"], "BadRequest field violations")
                return f"BadRequest field=user_id ({d.bad_request.field_violations[0].description})"
            return run

        def rate_limited():
            d = expect_status(
                lambda: client.create_session(channel, "fault:status:429", 10), grpc.StatusCode.RESOURCE_EXHAUSTED
            )
            expect_error_info(d, "UPSTREAM_RATE_LIMITED")
            metadata = dict(d.error_info.metadata)
            expect_eq(metadata.get("upstream_status"), "429", "ErrorInfo.metadata upstream_status")
            attempts = metadata.get("attempts", "")
            expect(attempts.isdigit() and int(attempts) >= 1, f"ErrorInfo.metadata attempts: {attempts!r}")
            expect(d.retry_info is not None, "no RetryInfo in the details")
            delay = d.retry_info.retry_delay
            expect_eq((delay.seconds, delay.nanos), (1, 0), "RetryInfo.retry_delay (seconds, nanos)")
            return f"RetryInfo 1s, attempts={attempts}"

        def deadline():
            started = time.monotonic()
            d = expect_status(
                lambda: client.create_session(channel, "fault:delay:3000", 0.3), grpc.StatusCode.DEADLINE_EXCEEDED
            )
            elapsed = time.monotonic() - started
            expect(elapsed < 2.0, f"DEADLINE_EXCEEDED only after {elapsed:.2f}s (deadline 0.3s)")
            reason = d.error_info.reason if d.error_info is not None else "none (client-side deadline)"
            return f"after {elapsed * 1000:.0f} ms, ErrorInfo reason: {reason}"

        def batch_stream():
            user_ids = batch_user_ids(f"{user_id}-stream")
            answers = client.create_sessions(channel, user_ids, 10)
            expect_eq(len(answers), len(user_ids), "answers")
            by_user = {a.user_id: a for a in answers}
            expect_eq(sorted(by_user), sorted(user_ids), "one answer per user_id")
            outcomes = [check_batch_answer(by_user[u], u, args.expect_client_name) for u in user_ids]
            return f"{len(answers)} answers: {', '.join(outcomes)}"

        def batch_unary():
            user_ids = batch_user_ids(f"{user_id}-batch")
            results = client.create_session_batch(channel, user_ids, 10).results
            expect_eq([r.user_id for r in results], user_ids, "results in request order")
            outcomes = [check_batch_answer(r, u, args.expect_client_name) for r, u in zip(results, user_ids)]
            return f"{len(results)} results in order: {', '.join(outcomes)}"

        def batch_too_big():
            user_ids = [f"{user_id}-big-{i}" for i in range(101)]
            d = expect_status(
                lambda: client.create_session_batch(channel, user_ids, 10), grpc.StatusCode.INVALID_ARGUMENT
            )
            expect_error_info(d, "INVALID_BATCH_SIZE")
            expect(d.bad_request is not None, "no BadRequest in the details")
            expect_eq([v.field for v in d.bad_request.field_violations], ["user_ids"], "BadRequest field violations")
            return f"BadRequest field=user_ids ({d.bad_request.field_violations[0].description})"

        def health(service):
            def run():
                expect_eq(client.health_check(channel, service), "SERVING", f"health of {service!r}")
                return "SERVING"
            return run

        case("success: first call, every field (is_new_user true)", success_first)
        case("success: second call for the same user (is_new_user false)", success_repeat)
        case("invalid user_id '' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid(""))
        case("invalid user_id '   ' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid("   "))
        case("fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo", rate_limited)
        case("fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED", deadline)
        case("batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives", batch_stream)
        case("batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order", batch_unary)
        case("batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest", batch_too_big)
        case("health check '' -> SERVING", health(""))
        case(f"health check '{client.SESSION_SERVICE}' -> SERVING", health(client.SESSION_SERVICE))

    print(f"[{LANG}] {results['passed']} passed, {results['failed']} failed", flush=True)
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
