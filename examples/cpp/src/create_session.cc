// Calls kgen.session.v1.SessionService/CreateSession on a kgen-gateway and prints the session or the error.
//
//   create_session --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10]
//
// (examples/cpp/run-client.sh builds it and runs it with these arguments.) On failure the gateway's
// machine-readable details, carried in the `grpc-status-details-bin` trailer as a serialized google.rpc.Status,
// are decoded from grpc::Status::error_details() and printed: ErrorInfo (reason, domain, metadata), RetryInfo (how
// long to wait) and BadRequest (which field was wrong).
//
// Exit status: 0 on success, 1 when the call failed, 2 for bad usage.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

#include "kgen_client.h"

namespace {

using kgen_example::Quote;

constexpr char kUsage[] = "usage: create_session [--target HOST:PORT] --user-id ID [--timeout SECONDS]";

struct Args {
  std::string target = "127.0.0.1:50051";
  std::optional<std::string> user_id;
  double timeout_seconds = 10;
};

// `--name value` or `--name=value`; throws std::invalid_argument on anything else.
Args ParseArgs(int argc, char** argv) {
  Args args;
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
    } else if (flag == "--timeout") {
      std::size_t used = 0;
      try {
        args.timeout_seconds = std::stod(value, &used);
      } catch (const std::logic_error&) {  // std::invalid_argument or std::out_of_range
        used = 0;
      }
      if (used == 0 || used != value.size() || !(args.timeout_seconds > 0) || !std::isfinite(args.timeout_seconds)) {
        throw std::invalid_argument("--timeout must be a positive number of seconds, got " + Quote(value));
      }
    } else {
      throw std::invalid_argument("unknown flag " + flag);
    }
  }
  if (!args.user_id) throw std::invalid_argument("--user-id is required");
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

  kgen_example::SessionClient client(kgen_example::Connect(args.target));
  const auto timeout = std::chrono::milliseconds(std::llround(args.timeout_seconds * 1000));
  kgen_example::session::CreateSessionResponse session;
  const grpc::Status status = client.CreateSession(*args.user_id, timeout, &session);
  if (!status.ok()) {
    try {
      for (const std::string& line : kgen_example::DescribeError(kgen_example::DecodeError(status))) {
        std::cout << line << "\n";
      }
    } catch (const kgen_example::DetailsError& e) {
      std::cout << "error: " << kgen_example::CodeName(status.error_code()) << ": " << status.error_message()
                << "\n  (unreadable details: " << e.what() << ")\n";
    }
    return 1;
  }
  for (const std::string& line : kgen_example::DescribeSession(session)) std::cout << line << "\n";
  return 0;
}
