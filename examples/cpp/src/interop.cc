// Interop checks for CI: drives a kgen-gateway started with --sandbox through the C++ stubs.
//
//   interop --target 127.0.0.1:50051 [--user-id interop-cpp-<random>] [--expect-client-name NAME]
//
// The same cases as examples/python/interop.py and examples/node/interop.js. Prints one line per case
// (`[cpp] PASS <case>` or `[cpp] FAIL <case>: <why>`) and a summary `[cpp] N passed, N failed`; exits 1 when any
// case failed, 2 for bad usage. The sandbox facts checked here are in the README ("The sandbox") and
// src/sandbox/mod.rs.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <google/protobuf/descriptor.h>

#include "kgen_client.h"

namespace {

using kgen_example::ErrorDetails;
using kgen_example::Quote;
using kgen_example::session::CreateSessionResponse;
using kgen_example::session::CreateSessionsResponse;
using std::chrono::milliseconds;

constexpr char kLang[] = "cpp";
constexpr char kDomain[] = "kgen-gateway";
// What the embedded sandbox (always client id `sandbox-client`) calls the game: `SANDBOX_` + the client id
// upper-cased.
constexpr char kDefaultClientName[] = "SANDBOX_SANDBOX_CLIENT";
constexpr milliseconds kTimeout{10000};
constexpr char kUsage[] = "usage: interop --target HOST:PORT [--user-id ID] [--expect-client-name NAME]";

const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
const std::regex kWallet("^0x[0-9a-f]{40}$");
const std::regex kClientId("^[0-9]{8}$");
const std::regex kBase64Url("^[A-Za-z0-9_-]+$");
const std::regex kGoTime(R"(^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$)");
const std::regex kPositive("^[1-9][0-9]*$");
// Fields the sandbox always leaves empty.
const std::vector<std::string> kEmptyFields = {
    "name",      "username", "email",         "device_id",    "phonenumber",   "date_joined",
    "playertag", "location", "location_name", "device_model", "screen_height", "screen_width",
    "os_name",   "os_version", "browser_name", "indigg_wallet_address", "linked_phone",
};

class CheckFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void Expect(bool condition, const std::string& what) {
  if (!condition) throw CheckFailed(what);
}

std::string Repr(const std::string& value) { return Quote(value); }
std::string Repr(const char* value) { return Quote(value); }
std::string Repr(bool value) { return value ? "true" : "false"; }
template <typename T, typename = std::enable_if_t<std::is_integral_v<T>>>
std::string Repr(T value) {
  return std::to_string(value);
}
std::string Repr(grpc::StatusCode value) { return kgen_example::CodeName(value); }
std::string Repr(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const std::string& value : values) out += (out.size() > 1 ? ", " : "") + Quote(value);
  return out + "]";
}

template <typename A, typename B>
void ExpectEq(const A& actual, const B& expected, const std::string& what) {
  if (!(actual == expected)) throw CheckFailed(what + ": got " + Repr(actual) + ", want " + Repr(expected));
}

// Reads fields by name through protobuf reflection and remembers which were read: the success case proves that
// every field of CreateSessionResponse, as the descriptor lists them, has a check.
class FieldReader {
 public:
  explicit FieldReader(const google::protobuf::Message& message)
      : message_(message), reflection_(*message.GetReflection()) {}

  const google::protobuf::FieldDescriptor& Field(const std::string& name) {
    const google::protobuf::FieldDescriptor* field = message_.GetDescriptor()->FindFieldByName(name);
    if (field == nullptr) throw CheckFailed("CreateSessionResponse has no field " + name);
    checked_.insert(name);
    return *field;
  }
  std::string String(const std::string& name) { return reflection_.GetString(message_, &Field(name)); }
  std::int64_t Int64(const std::string& name) { return reflection_.GetInt64(message_, &Field(name)); }
  bool Bool(const std::string& name) { return reflection_.GetBool(message_, &Field(name)); }
  bool Has(const std::string& name) { return reflection_.HasField(message_, &Field(name)); }
  const std::set<std::string>& checked() const { return checked_; }

 private:
  const google::protobuf::Message& message_;
  const google::protobuf::Reflection& reflection_;
  std::set<std::string> checked_;
};

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string::size_type start = 0;
  for (;;) {
    const auto end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::string Join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : separator) + part;
  return out;
}

std::string Trim(const std::string& text) {
  const auto begin = text.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

void CheckToken(const std::string& token, const std::string& namespaced, const std::string& name) {
  const std::vector<std::string> parts = Split(token, '.');
  ExpectEq(parts.size(), std::size_t{3}, name + " parts");
  for (const std::string& part : parts) {
    Expect(std::regex_match(part, kBase64Url), name + ": a part is not unpadded base64url");
  }
  google::protobuf::Struct header, payload;
  try {
    header = kgen_example::DecodeJwtPart(parts[0]);
    payload = kgen_example::DecodeJwtPart(parts[1]);
  } catch (const std::invalid_argument& e) {
    throw CheckFailed(name + ": header/payload is not base64url JSON (" + e.what() + ")");
  }
  Expect(header.fields().count("alg") == 1, name + ": header has no alg");
  const auto sub = payload.fields().find("sub");
  Expect(sub != payload.fields().end() && sub->second.has_string_value(),
         name + " payload sub: missing or not a string, want " + Quote(namespaced));
  ExpectEq(sub->second.string_value(), namespaced, name + " payload sub");
}

// Checks every field against the sandbox facts; returns the names of the fields checked.
std::set<std::string> CheckSession(const CreateSessionResponse& s, const std::string& user_id,
                                   const std::string& client_name, bool new_user) {
  FieldReader field(s);
  Expect(std::regex_match(field.String("session_id"), kUuid), "session_id is not a UUID: " + Quote(s.session_id()));
  ExpectEq(field.String("user_id"), user_id, "user_id");
  for (const std::string& name : kEmptyFields) ExpectEq(field.String(name), "", name);
  const std::int64_t level = field.Int64("level");
  Expect(level >= 0 && level <= 49, "level out of 0..=49: " + std::to_string(level));
  const std::int64_t rank = field.Int64("rank");
  Expect(rank >= 0 && rank <= 2550 && rank % 10 == 0,
         "rank not a multiple of 10 in 0..=2550: " + std::to_string(rank));
  Expect(!field.Has("indigg_id"), "indigg_id is set: " + Quote(s.indigg_id()));
  const std::string tpcid = field.String("third_party_client_id");
  Expect(std::regex_match(tpcid, kClientId), "third_party_client_id is not 8 digits: " + Quote(tpcid));
  ExpectEq(field.String("third_party_client_name"), client_name, "third_party_client_name");
  const std::string namespaced = field.String("namespaced_third_party_user_id");
  ExpectEq(namespaced, tpcid + "#" + user_id, "namespaced_third_party_user_id");
  Expect(std::regex_match(field.String("wallet_address"), kWallet), "wallet_address: " + Quote(s.wallet_address()));
  ExpectEq(field.Bool("is_new_user"), new_user, "is_new_user");
  CheckToken(field.String("access_token"), namespaced, "access_token");
  CheckToken(field.String("refresh_token"), namespaced, "refresh_token");
  const std::string start = field.String("session_start_time");
  Expect(std::regex_match(start, kGoTime), "session_start_time not in Go's format: " + Quote(start));
  const kgen_example::UnixTime parsed = kgen_example::ParseGoTime(start);
  const std::int64_t now = std::time(nullptr);
  Expect(parsed.seconds - now < 300 && now - parsed.seconds < 300, "session_start_time is not now: " + Quote(start));
  Expect(field.Has("session_started_at"), "session_started_at is unset");
  const google::protobuf::Timestamp& ts = s.session_started_at();
  if (ts.seconds() != parsed.seconds || ts.nanos() != parsed.nanos) {
    throw CheckFailed("session_started_at vs session_start_time " + Quote(start) + ": got (" +
                      std::to_string(ts.seconds()) + ", " + std::to_string(ts.nanos()) + "), want (" +
                      std::to_string(parsed.seconds) + ", " + std::to_string(parsed.nanos) + ")");
  }
  return field.checked();
}

// A call that must succeed; its status and details when it did not.
void ExpectOk(const grpc::Status& status, const std::string& call) {
  if (status.ok()) return;
  throw CheckFailed(call + " failed: " + Join(kgen_example::DescribeError(kgen_example::DecodeError(status)), "; "));
}

// The status of a call that must fail with `code`, decoded.
ErrorDetails ExpectStatus(const grpc::Status& status, grpc::StatusCode code) {
  if (status.ok()) throw CheckFailed("the call succeeded, want " + kgen_example::CodeName(code));
  ErrorDetails details = kgen_example::DecodeError(status);
  Expect(details.code == code, "status: got " + kgen_example::CodeName(details.code) + " (" + details.message +
                                   "), want " + kgen_example::CodeName(code));
  return details;
}

void ExpectErrorInfo(const ErrorDetails& details, const std::string& reason) {
  Expect(details.has_status_details, "no grpc-status-details-bin trailer");
  Expect(details.error_info.has_value(), "no ErrorInfo in the details");
  ExpectEq(details.error_info->reason(), reason, "ErrorInfo.reason");
  ExpectEq(details.error_info->domain(), kDomain, "ErrorInfo.domain");
}

std::string Metadata(const ErrorDetails& details, const std::string& key) {
  const auto& metadata = details.error_info->metadata();
  const auto found = metadata.find(key);
  return found == metadata.end() ? "" : found->second;
}

std::vector<std::string> ViolationFields(const google::rpc::BadRequest& bad_request) {
  std::vector<std::string> fields;
  for (const auto& violation : bad_request.field_violations()) fields.push_back(violation.field());
  return fields;
}

// Checks one batch answer against what CreateSession answers for `user_id` (see BatchUserIds); returns the
// outcome's name.
std::string CheckBatchAnswer(const CreateSessionsResponse& answer, const std::string& user_id,
                             const std::string& client_name) {
  ExpectEq(answer.user_id(), user_id, "answer user_id");
  const bool is_error = answer.result_case() == CreateSessionsResponse::kError;
  const bool is_session = answer.result_case() == CreateSessionsResponse::kSession;
  const std::string outcome = is_error ? "error" : is_session ? "session" : "none";
  if (Trim(user_id).empty()) {
    ExpectEq(outcome, "error", "outcome for " + Quote(user_id));
    const ErrorDetails d = kgen_example::DecodeStatus(answer.error());
    ExpectEq(d.code, grpc::StatusCode::INVALID_ARGUMENT, "code for " + Quote(user_id));
    ExpectErrorInfo(d, "INVALID_USER_ID");
    Expect(d.bad_request.has_value(), "no BadRequest in the item's details");
    ExpectEq(ViolationFields(*d.bad_request), std::vector<std::string>{"user_id"}, "BadRequest field violations");
    return "INVALID_ARGUMENT";
  }
  if (user_id == "fault:status:404") {
    ExpectEq(outcome, "error", "outcome for " + Quote(user_id));
    const ErrorDetails d = kgen_example::DecodeStatus(answer.error());
    ExpectEq(d.code, grpc::StatusCode::NOT_FOUND, "code for " + Quote(user_id));
    ExpectErrorInfo(d, "UPSTREAM_NOT_FOUND");
    ExpectEq(Metadata(d, "upstream_status"), "404", "ErrorInfo.metadata upstream_status");
    return "NOT_FOUND";
  }
  ExpectEq(outcome, "session", "outcome for " + Quote(user_id));
  CheckSession(answer.session(), user_id, client_name, true);
  return "session";
}

// Five user ids: three new gamers, an invalid (empty) one, and an injected 404.
std::vector<std::string> BatchUserIds(const std::string& prefix) {
  return {prefix + "-0", "", prefix + "-1", "fault:status:404", prefix + "-2"};
}

std::string RandomHex(int digits) {
  std::random_device random;
  std::ostringstream out;
  for (int i = 0; i < digits; ++i) out << std::hex << (random() & 0xf);
  return out.str();
}

struct Args {
  std::string target;
  std::string user_id = "interop-cpp-" + RandomHex(12);
  std::string expect_client_name;
};

Args ParseArgs(int argc, char** argv) {
  Args args;
  const char* env_client_name = std::getenv("INTEROP_EXPECT_CLIENT_NAME");
  args.expect_client_name = env_client_name != nullptr && *env_client_name != '\0' ? env_client_name
                                                                                      : kDefaultClientName;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (flag == "--help" || flag == "-h") {
      std::cout << kUsage << "\n";
      std::exit(0);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw std::invalid_argument(flag + " needs a value");
    }
    if (flag == "--target") {
      args.target = value;
    } else if (flag == "--user-id") {
      args.user_id = value;
    } else if (flag == "--expect-client-name") {
      args.expect_client_name = value;
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  if (args.target.empty()) throw std::invalid_argument("--target is required");
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    args = ParseArgs(argc, argv);
  } catch (const std::invalid_argument& e) {
    std::cerr << e.what() << "\n" << kUsage << "\n";
    return 2;
  }
  const std::string& user_id = args.user_id;
  const std::string& client_name = args.expect_client_name;
  int passed = 0;
  int failed = 0;

  auto run_case = [&](const std::string& name, const std::function<std::string()>& fn) {
    const auto started = std::chrono::steady_clock::now();
    try {
      const std::string note = fn();
      const auto elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
      ++passed;
      std::cout << "[" << kLang << "] PASS " << name << " (" << elapsed.count() << " ms)"
                << (note.empty() ? "" : ": " + note) << std::endl;
    } catch (const CheckFailed& e) {
      ++failed;
      std::cout << "[" << kLang << "] FAIL " << name << ": " << e.what() << std::endl;
    } catch (const std::exception& e) {  // an unexpected error is a failed case, not a crash
      ++failed;
      std::cout << "[" << kLang << "] FAIL " << name << ": unexpected exception: " << e.what() << std::endl;
    }
  };

  kgen_example::SessionClient client(kgen_example::Connect(args.target));
  std::optional<CreateSessionResponse> first;

  auto success_first = [&] {
    CreateSessionResponse s;
    const grpc::Status status = client.CreateSession(user_id, kTimeout, &s);
    ExpectOk(status, "CreateSession");
    const std::set<std::string> checked = CheckSession(s, user_id, client_name, true);
    const google::protobuf::Descriptor* descriptor = s.GetDescriptor();
    std::vector<std::string> unchecked;
    for (int i = 0; i < descriptor->field_count(); ++i) {
      if (checked.count(descriptor->field(i)->name()) == 0) unchecked.push_back(descriptor->field(i)->name());
    }
    ExpectEq(unchecked, std::vector<std::string>{}, "response fields without a check");
    first = s;
    return "user_id=" + user_id + ", all " + std::to_string(descriptor->field_count()) + " fields checked";
  };

  auto success_repeat = [&] {
    Expect(first.has_value(), "the first call failed");
    CreateSessionResponse s;
    const grpc::Status status = client.CreateSession(user_id, kTimeout, &s);
    ExpectOk(status, "CreateSession");
    CheckSession(s, user_id, client_name, false);
    ExpectEq(s.wallet_address(), first->wallet_address(), "wallet_address on the second call");
    Expect(s.session_id() != first->session_id(), "session_id is not fresh on the second call");
    return std::string("is_new_user false, same wallet_address, fresh session_id");
  };

  auto invalid = [&](const std::string& user) {
    return [&client, user] {
      CreateSessionResponse s;
      const ErrorDetails d =
          ExpectStatus(client.CreateSession(user, kTimeout, &s), grpc::StatusCode::INVALID_ARGUMENT);
      ExpectErrorInfo(d, "INVALID_USER_ID");
      Expect(d.bad_request.has_value(), "no BadRequest in the details");
      ExpectEq(ViolationFields(*d.bad_request), std::vector<std::string>{"user_id"}, "BadRequest field violations");
      return "BadRequest field=user_id (" + d.bad_request->field_violations(0).description() + ")";
    };
  };

  auto rate_limited = [&] {
    CreateSessionResponse s;
    const ErrorDetails d = ExpectStatus(client.CreateSession("fault:status:429", kTimeout, &s),
                                        grpc::StatusCode::RESOURCE_EXHAUSTED);
    ExpectErrorInfo(d, "UPSTREAM_RATE_LIMITED");
    ExpectEq(Metadata(d, "upstream_status"), "429", "ErrorInfo.metadata upstream_status");
    const std::string attempts = Metadata(d, "attempts");
    Expect(std::regex_match(attempts, kPositive), "ErrorInfo.metadata attempts: " + Quote(attempts));
    Expect(d.retry_info.has_value(), "no RetryInfo in the details");
    const google::protobuf::Duration& delay = d.retry_info->retry_delay();
    if (delay.seconds() != 1 || delay.nanos() != 0) {
      throw CheckFailed("RetryInfo.retry_delay (seconds, nanos): got (" + std::to_string(delay.seconds()) + ", " +
                        std::to_string(delay.nanos()) + "), want (1, 0)");
    }
    return "RetryInfo 1s, attempts=" + attempts;
  };

  auto deadline = [&] {
    const auto started = std::chrono::steady_clock::now();
    CreateSessionResponse s;
    const grpc::Status status = client.CreateSession("fault:delay:3000", milliseconds(300), &s);
    const auto elapsed = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started);
    const ErrorDetails d = ExpectStatus(status, grpc::StatusCode::DEADLINE_EXCEEDED);
    Expect(elapsed < milliseconds(2000),
           "DEADLINE_EXCEEDED only after " + std::to_string(elapsed.count()) + " ms (deadline 300 ms)");
    const std::string reason = d.error_info ? d.error_info->reason() : "none (client-side deadline)";
    return "after " + std::to_string(elapsed.count()) + " ms, ErrorInfo reason: " + reason;
  };

  auto batch_stream = [&] {
    const std::vector<std::string> user_ids = BatchUserIds(user_id + "-stream");
    std::vector<CreateSessionsResponse> answers;
    const grpc::Status status = client.CreateSessions(user_ids, kTimeout, &answers);
    ExpectOk(status, "CreateSessions");
    ExpectEq(answers.size(), user_ids.size(), "answers");
    std::map<std::string, const CreateSessionsResponse*> by_user;
    for (const CreateSessionsResponse& answer : answers) by_user[answer.user_id()] = &answer;
    std::vector<std::string> answered;
    for (const auto& entry : by_user) answered.push_back(entry.first);
    std::vector<std::string> expected = user_ids;
    std::sort(expected.begin(), expected.end());
    ExpectEq(answered, expected, "one answer per user_id");
    std::vector<std::string> outcomes;
    for (const std::string& u : user_ids) outcomes.push_back(CheckBatchAnswer(*by_user.at(u), u, client_name));
    return std::to_string(answers.size()) + " answers: " + Join(outcomes, ", ");
  };

  auto batch_unary = [&] {
    const std::vector<std::string> user_ids = BatchUserIds(user_id + "-batch");
    kgen_example::session::CreateSessionBatchResponse batch;
    const grpc::Status status = client.CreateSessionBatch(user_ids, kTimeout, &batch);
    ExpectOk(status, "CreateSessionBatch");
    std::vector<std::string> in_order;
    for (const CreateSessionsResponse& result : batch.results()) in_order.push_back(result.user_id());
    ExpectEq(in_order, user_ids, "results in request order");
    std::vector<std::string> outcomes;
    for (int i = 0; i < batch.results_size(); ++i) {
      outcomes.push_back(CheckBatchAnswer(batch.results(i), user_ids[i], client_name));
    }
    return std::to_string(batch.results_size()) + " results in order: " + Join(outcomes, ", ");
  };

  auto batch_too_big = [&] {
    std::vector<std::string> user_ids;
    for (int i = 0; i < 101; ++i) user_ids.push_back(user_id + "-big-" + std::to_string(i));
    kgen_example::session::CreateSessionBatchResponse batch;
    const ErrorDetails d =
        ExpectStatus(client.CreateSessionBatch(user_ids, kTimeout, &batch), grpc::StatusCode::INVALID_ARGUMENT);
    ExpectErrorInfo(d, "INVALID_BATCH_SIZE");
    Expect(d.bad_request.has_value(), "no BadRequest in the details");
    ExpectEq(ViolationFields(*d.bad_request), std::vector<std::string>{"user_ids"}, "BadRequest field violations");
    return "BadRequest field=user_ids (" + d.bad_request->field_violations(0).description() + ")";
  };

  auto health = [&](const std::string& service) {
    return [&client, service] {
      std::string serving;
      const grpc::Status status = client.HealthCheck(service, milliseconds(5000), &serving);
      Expect(status.ok(), "Health/Check failed: " + kgen_example::CodeName(status.error_code()) + " (" +
                              status.error_message() + ")");
      ExpectEq(serving, "SERVING", "health of " + Quote(service));
      return std::string("SERVING");
    };
  };

  run_case("success: first call, every field (is_new_user true)", success_first);
  run_case("success: second call for the same user (is_new_user false)", success_repeat);
  run_case("invalid user_id '' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid(""));
  run_case("invalid user_id '   ' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid("   "));
  run_case("fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo", rate_limited);
  run_case("fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED", deadline);
  run_case("batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives",
           batch_stream);
  run_case("batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order", batch_unary);
  run_case("batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest", batch_too_big);
  run_case("health check '' -> SERVING", health(""));
  run_case(std::string("health check '") + kgen_example::kSessionService + "' -> SERVING",
           health(kgen_example::kSessionService));

  std::cout << "[" << kLang << "] " << passed << " passed, " << failed << " failed" << std::endl;
  return failed == 0 ? 0 : 1;
}
