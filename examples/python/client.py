#!/usr/bin/env python3
"""Calls kgen.session.v1.SessionService/CreateSession on a kgen-gateway and prints the session or the error.

    python client.py --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10]

Run ./generate.sh first (the stubs go to gen/). On failure the gateway's machine-readable details, carried in the
`grpc-status-details-bin` trailer as a serialized google.rpc.Status, are decoded with
`grpc_status.rpc_status.from_call` and printed: ErrorInfo (reason, domain, metadata), RetryInfo (how long to wait)
and BadRequest (which field was wrong).

The helpers below (stubs, error decoding, time parsing, token decoding) are imported by interop.py.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "gen"))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_status import rpc_status  # noqa: E402

try:
    from kgen.session.v1 import session_pb2, session_pb2_grpc  # noqa: E402
except ImportError as exc:  # pragma: no cover - a setup problem, not a bug
    sys.exit(f"cannot import the generated stubs ({exc}); run ./generate.sh first")

SESSION_SERVICE = "kgen.session.v1.SessionService"
# Fields that are secrets (access/refresh tokens): printed redacted, never in full.
SECRET_FIELDS = ("access_token", "refresh_token")


def connect(target: str) -> grpc.Channel:
    """A plaintext (h2c) channel to the gateway; use grpc.secure_channel when it serves TLS."""
    return grpc.insecure_channel(target)


def create_session(
    channel: grpc.Channel, user_id: str, timeout: float
) -> session_pb2.CreateSessionResponse:
    """One CreateSession call with a deadline of `timeout` seconds (always set one). Raises grpc.RpcError."""
    stub = session_pb2_grpc.SessionServiceStub(channel)
    return stub.CreateSession(session_pb2.CreateSessionRequest(user_id=user_id), timeout=timeout)


def create_sessions(
    channel: grpc.Channel, user_ids: list[str], timeout: float
) -> list[session_pb2.CreateSessionsResponse]:
    """CreateSessions: streams one request per user id and reads every answer. Answers arrive as their upstream
    calls complete, not in request order: match them by `user_id`. A failed item carries its own google.rpc.Status
    in `error`; the call raises grpc.RpcError only when the stream itself fails (deadline, shutdown, ...)."""
    stub = session_pb2_grpc.SessionServiceStub(channel)
    requests = (session_pb2.CreateSessionRequest(user_id=user_id) for user_id in user_ids)
    return list(stub.CreateSessions(requests, timeout=timeout))


def create_session_batch(
    channel: grpc.Channel, user_ids: list[str], timeout: float
) -> session_pb2.CreateSessionBatchResponse:
    """CreateSessionBatch: the unary form, for 1 to 100 user ids; results come in request order."""
    stub = session_pb2_grpc.SessionServiceStub(channel)
    return stub.CreateSessionBatch(session_pb2.CreateSessionBatchRequest(user_ids=user_ids), timeout=timeout)


def health_check(channel: grpc.Channel, service: str = "", timeout: float = 5.0) -> str:
    """grpc.health.v1.Health/Check; returns the status name (e.g. "SERVING")."""
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@dataclass
class ErrorDetails:
    """A failed call: its code and message, and the google.rpc details found in grpc-status-details-bin."""

    code: grpc.StatusCode
    message: str
    has_status_details: bool = False
    error_info: Optional[error_details_pb2.ErrorInfo] = None
    retry_info: Optional[error_details_pb2.RetryInfo] = None
    bad_request: Optional[error_details_pb2.BadRequest] = None
    other_details: list = field(default_factory=list)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def decode_error(error: grpc.RpcError) -> ErrorDetails:
    """Decodes the google.rpc.Status in the grpc-status-details-bin trailer, if the call carried one."""
    details = ErrorDetails(code=error.code(), message=error.details() or "")
    # None when the trailer is absent (e.g. a deadline that expired in the client before the server answered).
    status = rpc_status.from_call(error)
    if status is None:
        return details
    return _add_details(details, status)


def decode_status(status: status_pb2.Status) -> ErrorDetails:
    """Decodes the google.rpc.Status of a failed batch item (CreateSessionsResponse.error): the same code, message
    and details CreateSession carries in its grpc-status-details-bin trailer."""
    details = ErrorDetails(code=_CODES.get(status.code, grpc.StatusCode.UNKNOWN), message=status.message)
    return _add_details(details, status)


def _add_details(details: ErrorDetails, status: status_pb2.Status) -> ErrorDetails:
    details.has_status_details = True
    for any_detail in status.details:
        for attr, message_type in (
            ("error_info", error_details_pb2.ErrorInfo),
            ("retry_info", error_details_pb2.RetryInfo),
            ("bad_request", error_details_pb2.BadRequest),
        ):
            if any_detail.Is(message_type.DESCRIPTOR):
                decoded = message_type()
                any_detail.Unpack(decoded)
                setattr(details, attr, decoded)
                break
        else:
            details.other_details.append(any_detail.type_url)
    return details


def duration_seconds(duration: duration_pb2.Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


_GO_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2}) [A-Za-z0-9+-]+$"
)


def parse_go_time(text: str) -> tuple[int, int]:
    """Parses Go's time.Time String() format (`2024-08-20 08:32:13.025599965 +0000 UTC`) into
    (Unix seconds, nanos), to the nanosecond (datetime would lose the last three digits)."""
    match = _GO_TIME.match(text)
    if not match:
        raise ValueError(f"not Go's time format: {text!r}")
    wall, fraction, sign, hours, minutes = match.groups()
    seconds = calendar.timegm(time.strptime(wall, "%Y-%m-%d %H:%M:%S"))
    offset = (int(hours) * 3600 + int(minutes) * 60) * (1 if sign == "+" else -1)
    nanos = int((fraction or "").ljust(9, "0"))
    return seconds - offset, nanos


def decode_jwt_part(part: str) -> dict:
    """Decodes one base64url (unpadded) JSON part of a JWT."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def describe_session(session: session_pb2.CreateSessionResponse) -> list[str]:
    """One `name: value` line per field, in proto order; tokens are redacted."""
    lines = []
    for fd in session.DESCRIPTOR.fields:
        name = fd.name
        if name == "session_started_at":
            value = (
                session.session_started_at.ToJsonString()
                if session.HasField("session_started_at")
                else "(unset: the gateway could not parse session_start_time)"
            )
        elif name == "indigg_id" and not session.HasField("indigg_id"):
            value = "(unset)"
        elif name in SECRET_FIELDS:
            token = getattr(session, name)
            value = f"[redacted, {len(token)} chars, {token.count('.') + 1} parts]"
        else:
            value = repr(getattr(session, name))
        lines.append(f"{name}: {value}")
    return lines


def describe_error(details: ErrorDetails) -> list[str]:
    lines = [f"error: {details.code.name}: {details.message}"]
    if not details.has_status_details:
        lines.append("  (no grpc-status-details-bin trailer)")
    if details.error_info is not None:
        info = details.error_info
        lines.append(f"  ErrorInfo: reason={info.reason} domain={info.domain} metadata={dict(sorted(info.metadata.items()))}")
    if details.retry_info is not None:
        lines.append(f"  RetryInfo: retry_delay={duration_seconds(details.retry_info.retry_delay):g}s")
    if details.bad_request is not None:
        for violation in details.bad_request.field_violations:
            lines.append(f"  BadRequest: field={violation.field} description={violation.description}")
    for type_url in details.other_details:
        lines.append(f"  other detail: {type_url}")
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway address, HOST:PORT (plaintext)")
    parser.add_argument("--user-id", required=True, help="the gamer's id in your game")
    parser.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds (default 10)")
    args = parser.parse_args(argv)

    with connect(args.target) as channel:
        try:
            session = create_session(channel, args.user_id, args.timeout)
        except grpc.RpcError as error:
            for line in describe_error(decode_error(error)):
                print(line)
            return 1
    for line in describe_session(session):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
