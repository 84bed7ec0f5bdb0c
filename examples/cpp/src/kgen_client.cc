// The helpers declared in kgen_client.h.
#include "kgen_client.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

namespace kgen_example {

namespace {

std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

ErrorDetails AddDetails(ErrorDetails details, const google::rpc::Status& status) {
  details.has_status_details = true;
  for (const google::protobuf::Any& any : status.details()) {
    bool unpacked = true;
    if (any.Is<google::rpc::ErrorInfo>()) {
      unpacked = any.UnpackTo(&details.error_info.emplace());
    } else if (any.Is<google::rpc::RetryInfo>()) {
      unpacked = any.UnpackTo(&details.retry_info.emplace());
    } else if (any.Is<google::rpc::BadRequest>()) {
      unpacked = any.UnpackTo(&details.bad_request.emplace());
    } else {
      details.other_details.push_back(any.type_url());
    }
    if (!unpacked) throw DetailsError("a detail of type " + any.type_url() + " does not decode");
  }
  return details;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const std::int64_t year_of_era = year - era * 400;
  const std::int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const std::int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

// === SessionClient ===

std::shared_ptr<grpc::Channel> Connect(const std::string& target) {
  return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
}

SessionClient::SessionClient(const std::shared_ptr<grpc::Channel>& channel)
    : session_(session::SessionService::NewStub(channel)), health_(grpc::health::v1::Health::NewStub(channel)) {}

grpc::Status SessionClient::CreateSession(const std::string& user_id, std::chrono::milliseconds timeout,
                                          session::CreateSessionResponse* session) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  session::CreateSessionRequest request;
  request.set_user_id(user_id);
  return session_->CreateSession(&context, request, session);
}

grpc::Status SessionClient::CreateSessions(const std::vector<std::string>& user_ids,
                                           std::chrono::milliseconds timeout,
                                           std::vector<session::CreateSessionsResponse>* answers) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  std::unique_ptr<grpc::ClientReaderWriter<session::CreateSessionRequest, session::CreateSessionsResponse>> stream =
      session_->CreateSessions(&context);
  // One thread writes while this one reads: the gateway reads further requests only as answers are read.
  std::thread writer([&stream, &user_ids] {
    session::CreateSessionRequest request;
    for (const std::string& user_id : user_ids) {
      request.set_user_id(user_id);
      if (!stream->Write(request)) break;  // the stream has ended; Finish says why
    }
    stream->WritesDone();
  });
  session::CreateSessionsResponse answer;
  while (stream->Read(&answer)) answers->push_back(answer);
  writer.join();
  return stream->Finish();
}

grpc::Status SessionClient::CreateSessionBatch(const std::vector<std::string>& user_ids,
                                               std::chrono::milliseconds timeout,
                                               session::CreateSessionBatchResponse* batch) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  session::CreateSessionBatchRequest request;
  for (const std::string& user_id : user_ids) request.add_user_ids(user_id);
  return session_->CreateSessionBatch(&context, request, batch);
}

grpc::Status SessionClient::HealthCheck(const std::string& service, std::chrono::milliseconds timeout,
                                        std::string* status_name) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse reply;
  grpc::Status status = health_->Check(&context, request, &reply);
  if (status.ok()) *status_name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(reply.status());
  return status;
}

// === error details ===

ErrorDetails DecodeError(const grpc::Status& status) {
  ErrorDetails details;
  details.code = status.error_code();
  details.message = status.error_message();
  if (status.error_details().empty()) return details;
  google::rpc::Status rpc_status;
  if (!rpc_status.ParseFromString(status.error_details())) {
    throw DetailsError("grpc-status-details-bin is not a google.rpc.Status");
  }
  if (rpc_status.code() != static_cast<int>(status.error_code())) {
    throw DetailsError("grpc-status-details-bin says " + CodeName(rpc_status.code()) + ", the call " +
                       CodeName(status.error_code()));
  }
  if (rpc_status.message() != status.error_message()) {
    throw DetailsError("grpc-status-details-bin's message " + Quote(rpc_status.message()) +
                       " differs from the call's " + Quote(status.error_message()));
  }
  return AddDetails(std::move(details), rpc_status);
}

ErrorDetails DecodeStatus(const google::rpc::Status& status) {
  ErrorDetails details;
  details.code = static_cast<grpc::StatusCode>(status.code());
  details.message = status.message();
  return AddDetails(std::move(details), status);
}

std::string CodeName(int code) {
  static const char* const kNames[] = {
      "OK",           "CANCELLED",     "UNKNOWN",  "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED",
  };
  if (code >= 0 && code < static_cast<int>(std::size(kNames))) return kNames[code];
  return "code " + std::to_string(code);
}

std::string CodeName(grpc::StatusCode code) { return CodeName(static_cast<int>(code)); }

// === parsing ===

UnixTime ParseGoTime(const std::string& text) {
  static const std::regex kGoTime(
      R"(^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2}) [A-Za-z0-9+-]+$)");
  std::smatch m;
  if (!std::regex_match(text, m, kGoTime)) throw std::invalid_argument("not Go's time format: " + Quote(text));
  auto number = [&m](int group) { return std::stoi(m[group].str()); };
  const int month = number(2), day = number(3), hour = number(4), minute = number(5), second = number(6);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw std::invalid_argument("not a valid time: " + Quote(text));
  }
  std::string fraction = m[7].str();
  fraction.resize(9, '0');
  const std::int64_t offset = (number(9) * 3600 + number(10) * 60) * (m[8].str() == "+" ? 1 : -1);
  const std::int64_t wall = DaysFromCivil(number(1), month, day) * 86400 + hour * 3600 + minute * 60 + second;
  return UnixTime{wall - offset, static_cast<std::int32_t>(std::stol(fraction))};
}

google::protobuf::Struct DecodeJwtPart(const std::string& part) {
  if (part.size() % 4 == 1) throw std::invalid_argument("base64url of impossible length");
  std::string json;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : part) {
    const int value = Base64UrlValue(c);
    if (value < 0) throw std::invalid_argument("not base64url");
    bits = (bits << 6) | static_cast<std::uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      json.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  google::protobuf::Struct object;
  const auto parsed = google::protobuf::util::JsonStringToMessage(json, &object);
  if (!parsed.ok()) throw std::invalid_argument("not a JSON object: " + parsed.ToString());
  return object;
}

// === printing ===

std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::vector<std::string> DescribeSession(const session::CreateSessionResponse& session) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* descriptor = session.GetDescriptor();
  const google::protobuf::Reflection* reflection = session.GetReflection();
  std::vector<std::string> lines;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    const std::string& name = field->name();
    std::string value;
    if (name == "session_started_at") {
      value = session.has_session_started_at()
                  ? google::protobuf::util::TimeUtil::ToString(session.session_started_at())
                  : "(unset: the gateway could not parse session_start_time)";
    } else if (field->has_presence() && !reflection->HasField(session, field)) {
      value = "(unset)";  // indigg_id when KGeN sent null
    } else if (name == "access_token" || name == "refresh_token") {
      const std::string token = reflection->GetString(session, field);
      const auto parts = std::count(token.begin(), token.end(), '.') + 1;
      value = "[redacted, " + std::to_string(token.size()) + " chars, " + std::to_string(parts) + " parts]";
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      value = Quote(reflection->GetString(session, field));
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
      value = std::to_string(reflection->GetInt64(session, field));
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
      value = reflection->GetBool(session, field) ? "true" : "false";
    } else {
      value = "(a " + std::string(field->cpp_type_name()) + ")";
    }
    lines.push_back(name + ": " + value);
  }
  return lines;
}

std::vector<std::string> DescribeError(const ErrorDetails& details) {
  std::vector<std::string> lines{"error: " + CodeName(details.code) + ": " + details.message};
  if (!details.has_status_details) lines.push_back("  (no grpc-status-details-bin trailer)");
  if (details.error_info) {
    const std::map<std::string, std::string> sorted(details.error_info->metadata().begin(),
                                                    details.error_info->metadata().end());
    std::string metadata;
    for (const auto& [key, value] : sorted) {
      metadata += (metadata.empty() ? "" : ", ") + Quote(key) + ": " + Quote(value);
    }
    lines.push_back("  ErrorInfo: reason=" + details.error_info->reason() + " domain=" + details.error_info->domain() +
                    " metadata={" + metadata + "}");
  }
  if (details.retry_info) {
    const google::protobuf::Duration& delay = details.retry_info->retry_delay();
    std::ostringstream seconds;
    seconds << static_cast<double>(delay.seconds()) + delay.nanos() / 1e9;
    lines.push_back("  RetryInfo: retry_delay=" + seconds.str() + "s");
  }
  if (details.bad_request) {
    for (const google::rpc::BadRequest::FieldViolation& violation : details.bad_request->field_violations()) {
      lines.push_back("  BadRequest: field=" + violation.field() + " description=" + violation.description());
    }
  }
  for (const std::string& type_url : details.other_details) lines.push_back("  other detail: " + type_url);
  return lines;
}

}  // namespace kgen_example
