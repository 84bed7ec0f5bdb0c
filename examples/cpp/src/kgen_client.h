// Helpers for calling kgen-gateway from C++: the three SessionService calls and the health check, each with a
// deadline; decoding of the google.rpc details a failed call carries in its `grpc-status-details-bin` trailer
// (ErrorInfo, RetryInfo, BadRequest); printing a session or an error. Used by create_session.cc and interop.cc.
#ifndef KGEN_EXAMPLE_KGEN_CLIENT_H
#define KGEN_EXAMPLE_KGEN_CLIENT_H

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <grpcpp/grpcpp.h>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "kgen/session/v1/session.grpc.pb.h"

namespace kgen_example {

namespace session = ::kgen::session::v1;

inline constexpr char kSessionService[] = "kgen.session.v1.SessionService";

// A plaintext (h2c) channel to the gateway; use grpc::SslCredentials(...) instead when it serves TLS.
std::shared_ptr<grpc::Channel> Connect(const std::string& target);

// The gateway's calls, each with a deadline `timeout` from now (always set one: the gateway gives KGeN only the
// time left). Each returns the call's grpc::Status; decode a failed one with DecodeError.
class SessionClient {
 public:
  explicit SessionClient(const std::shared_ptr<grpc::Channel>& channel);

  // CreateSession for one user id.
  grpc::Status CreateSession(const std::string& user_id, std::chrono::milliseconds timeout,
                             session::CreateSessionResponse* session);

  // CreateSessions: streams one request per user id (from a second thread, so the gateway's flow control never
  // waits on us) and reads every answer. Answers arrive as their upstream calls complete, not in request order:
  // match them by `user_id`. A failed item carries its own google.rpc.Status in `error` (decode it with
  // DecodeStatus); the returned status is not OK only when the stream itself failed (deadline, shutdown, ...).
  grpc::Status CreateSessions(const std::vector<std::string>& user_ids, std::chrono::milliseconds timeout,
                              std::vector<session::CreateSessionsResponse>* answers);

  // CreateSessionBatch: the unary form, for 1 to 100 user ids; results come in request order.
  grpc::Status CreateSessionBatch(const std::vector<std::string>& user_ids, std::chrono::milliseconds timeout,
                                  session::CreateSessionBatchResponse* batch);

  // grpc.health.v1.Health/Check; `status_name` is e.g. "SERVING".
  grpc::Status HealthCheck(const std::string& service, std::chrono::milliseconds timeout, std::string* status_name);

 private:
  std::unique_ptr<session::SessionService::Stub> session_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// A failed call: its code and message, and the google.rpc details found in grpc-status-details-bin.
struct ErrorDetails {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  std::string message;
  bool has_status_details = false;
  std::optional<google::rpc::ErrorInfo> error_info;
  std::optional<google::rpc::RetryInfo> retry_info;
  std::optional<google::rpc::BadRequest> bad_request;
  std::vector<std::string> other_details;  // type URLs of details of other types
};

// The details carried in grpc-status-details-bin could not be read, or contradict the call's own status.
class DetailsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Decodes the google.rpc.Status that grpc::Status::error_details() holds (the serialized
// grpc-status-details-bin trailer; empty when the call carried none, e.g. a deadline that expired in the client
// before the server answered), then unpacks each google.protobuf.Any it holds. Throws DetailsError when the
// bytes are not a google.rpc.Status or its code or message differ from the call's.
ErrorDetails DecodeError(const grpc::Status& status);

// Decodes the google.rpc.Status of a failed batch item (CreateSessionsResponse.error): the same code, message and
// details CreateSession carries in its grpc-status-details-bin trailer.
ErrorDetails DecodeStatus(const google::rpc::Status& status);

// "RESOURCE_EXHAUSTED" and so on; the number for a code outside the 17 known ones.
std::string CodeName(grpc::StatusCode code);
std::string CodeName(int code);

// Parses Go's time.Time String() format (`2024-08-20 08:32:13.025599965 +0000 UTC`) into Unix seconds and
// nanos, to the nanosecond. Throws std::invalid_argument for anything else.
struct UnixTime {
  std::int64_t seconds;
  std::int32_t nanos;
};
UnixTime ParseGoTime(const std::string& text);

// Decodes one unpadded base64url JSON object (a part of a JWT) into a google.protobuf.Struct. Throws
// std::invalid_argument when it is not base64url or not a JSON object.
google::protobuf::Struct DecodeJwtPart(const std::string& part);

// One `name: value` line per field, in proto order; tokens are redacted.
std::vector<std::string> DescribeSession(const session::CreateSessionResponse& session);

// `error: CODE: message` and one line per detail.
std::vector<std::string> DescribeError(const ErrorDetails& details);

// A string quoted and escaped as in C/JSON ("a\"b").
std::string Quote(const std::string& text);

}  // namespace kgen_example

#endif  // KGEN_EXAMPLE_KGEN_CLIENT_H
