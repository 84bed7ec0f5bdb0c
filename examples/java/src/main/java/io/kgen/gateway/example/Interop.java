package io.kgen.gateway.example;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Timestamp;
import com.google.rpc.BadRequest;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.kgen.session.v1.CreateSessionResponse;
import io.kgen.session.v1.CreateSessionsResponse;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * Interop checks for CI: drives a kgen-gateway started with {@code --sandbox} through the grpc-java stubs.
 *
 * <pre>
 * examples/java/run-interop.sh --target 127.0.0.1:50051 [--user-id interop-java-&lt;random&gt;]
 * </pre>
 *
 * <p>Prints one line per case ({@code [java] PASS <case>} or {@code [java] FAIL <case>: <why>}) and a summary
 * {@code [java] N passed, N failed}; exits 1 when any case failed, 2 for bad usage. The cases, their names and
 * their checks are those of examples/python/interop.py and examples/node/interop.js; the sandbox facts checked here
 * are in the README ("The sandbox") and src/sandbox/mod.rs.
 */
public final class Interop {
  private static final String LANG = "java";
  private static final String DOMAIN = "kgen-gateway";
  /** What the embedded sandbox (always client id {@code sandbox-client}) calls the game. */
  private static final String DEFAULT_CLIENT_NAME = "SANDBOX_SANDBOX_CLIENT";
  private static final Duration TIMEOUT = Duration.ofSeconds(10);

  private static final Pattern UUID_RE =
      Pattern.compile("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$");
  private static final Pattern WALLET_RE = Pattern.compile("^0x[0-9a-f]{40}$");
  private static final Pattern CLIENT_ID_RE = Pattern.compile("^[0-9]{8}$");
  private static final Pattern B64URL_RE = Pattern.compile("^[A-Za-z0-9_-]+$");
  private static final Pattern GO_TIME_RE =
      Pattern.compile("^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})? \\+0000 UTC$");
  private static final Pattern DIGITS_RE = Pattern.compile("^[0-9]+$");
  /** Fields the sandbox always leaves empty. */
  private static final List<String> EMPTY_FIELDS =
      List.of(
          "name", "username", "email", "device_id", "phonenumber", "date_joined", "playertag", "location",
          "location_name", "device_model", "screen_height", "screen_width", "os_name", "os_version",
          "browser_name", "indigg_wallet_address", "linked_phone");

  /** A check that did not hold: the case fails with this message. */
  static final class CheckFailed extends Exception {
    CheckFailed(String message) {
      super(message);
    }
  }

  /** One case: returns a note for its PASS line, or null. */
  @FunctionalInterface
  interface Case {
    String run() throws Exception;
  }

  /** A call that must fail. */
  @FunctionalInterface
  interface Call {
    void run() throws Exception;
  }

  private final String expectClientName;
  private int passed;
  private int failed;

  private Interop(String expectClientName) {
    this.expectClientName = expectClientName;
  }

  static void expect(boolean condition, String what) throws CheckFailed {
    if (!condition) {
      throw new CheckFailed(what);
    }
  }

  static void expectEq(Object actual, Object expected, String what) throws CheckFailed {
    if (!Objects.equals(actual, expected)) {
      throw new CheckFailed(what + ": got " + repr(actual) + ", want " + repr(expected));
    }
  }

  static String repr(Object value) {
    if (value instanceof String) {
      return Client.quote((String) value);
    }
    if (value instanceof List) {
      return ((List<?>) value).stream().map(Interop::repr).collect(Collectors.joining(", ", "[", "]"));
    }
    return String.valueOf(value);
  }

  static void checkToken(String token, String namespaced, String name) throws CheckFailed {
    String[] parts = token.split("\\.", -1);
    expectEq(parts.length, 3, name + " parts");
    for (String part : parts) {
      expect(B64URL_RE.matcher(part).matches(), name + ": a part is not unpadded base64url");
    }
    JsonElement header;
    JsonElement payload;
    try {
      header = Client.decodeJwtPart(parts[0]);
      payload = Client.decodeJwtPart(parts[1]);
    } catch (RuntimeException e) {
      throw new CheckFailed(name + ": header/payload is not base64url JSON (" + e.getMessage() + ")");
    }
    expect(header.isJsonObject() && header.getAsJsonObject().has("alg"), name + ": header has no alg");
    expect(payload.isJsonObject(), name + ": payload is not a JSON object");
    JsonObject claims = payload.getAsJsonObject();
    JsonElement sub = claims.get("sub");
    expectEq(
        sub != null && sub.isJsonPrimitive() ? sub.getAsString() : String.valueOf(sub),
        namespaced,
        name + " payload sub");
  }

  /** Checks every field against the sandbox facts; returns the names of the fields checked. */
  Set<String> checkSession(CreateSessionResponse s, String userId, boolean newUser) throws CheckFailed {
    Set<String> checked = new HashSet<>();
    Map<String, FieldDescriptor> fields = new HashMap<>();
    for (FieldDescriptor fd : CreateSessionResponse.getDescriptor().getFields()) {
      fields.put(fd.getName(), fd);
    }
    class Fields {
      Object get(String name) throws CheckFailed {
        FieldDescriptor fd = fields.get(name);
        expect(fd != null, "CreateSessionResponse has no field " + name);
        checked.add(name);
        return s.getField(fd);
      }
    }
    Fields f = new Fields();

    expect(
        UUID_RE.matcher((String) f.get("session_id")).matches(),
        "session_id is not a UUID: " + repr(s.getSessionId()));
    expectEq(f.get("user_id"), userId, "user_id");
    for (String name : EMPTY_FIELDS) {
      expectEq(f.get(name), "", name);
    }
    long level = (Long) f.get("level");
    expect(level >= 0 && level <= 49, "level out of 0..=49: " + level);
    long rank = (Long) f.get("rank");
    expect(rank >= 0 && rank <= 2550 && rank % 10 == 0, "rank not a multiple of 10 in 0..=2550: " + rank);
    checked.add("indigg_id");
    expect(!s.hasIndiggId(), "indigg_id is set: " + repr(s.getIndiggId()));
    String tpcid = (String) f.get("third_party_client_id");
    expect(CLIENT_ID_RE.matcher(tpcid).matches(), "third_party_client_id is not 8 digits: " + repr(tpcid));
    expectEq(f.get("third_party_client_name"), expectClientName, "third_party_client_name");
    String namespaced = (String) f.get("namespaced_third_party_user_id");
    expectEq(namespaced, tpcid + "#" + userId, "namespaced_third_party_user_id");
    expect(
        WALLET_RE.matcher((String) f.get("wallet_address")).matches(),
        "wallet_address: " + repr(s.getWalletAddress()));
    expectEq(f.get("is_new_user"), newUser, "is_new_user");
    checkToken((String) f.get("access_token"), namespaced, "access_token");
    checkToken((String) f.get("refresh_token"), namespaced, "refresh_token");
    String start = (String) f.get("session_start_time");
    expect(GO_TIME_RE.matcher(start).matches(), "session_start_time not in Go's format: " + repr(start));
    Timestamp parsed = Client.parseGoTime(start);
    long now = System.currentTimeMillis() / 1000;
    expect(Math.abs(parsed.getSeconds() - now) < 300, "session_start_time is not now: " + repr(start));
    checked.add("session_started_at");
    expect(s.hasSessionStartedAt(), "session_started_at is unset");
    Timestamp got = s.getSessionStartedAt();
    expectEq(
        List.of(got.getSeconds(), (long) got.getNanos()),
        List.of(parsed.getSeconds(), (long) parsed.getNanos()),
        "session_started_at (seconds, nanos) vs session_start_time " + repr(start));
    return checked;
  }

  /** Runs {@code call}, which must fail with {@code code}; returns its decoded details. */
  static ErrorDetails expectStatus(Call call, Status.Code code) throws Exception {
    try {
      call.run();
    } catch (StatusRuntimeException | StatusException error) {
      ErrorDetails d = ErrorDetails.fromThrowable(error);
      expect(d.code == code, "status: got " + d.code + " (" + d.message + "), want " + code);
      return d;
    }
    throw new CheckFailed("the call succeeded, want " + code);
  }

  static void expectErrorInfo(ErrorDetails d, String reason) throws CheckFailed {
    expect(d.hasStatusDetails, "no grpc-status-details-bin trailer");
    expect(d.errorInfo != null, "no ErrorInfo in the details");
    expectEq(d.errorInfo.getReason(), reason, "ErrorInfo.reason");
    expectEq(d.errorInfo.getDomain(), DOMAIN, "ErrorInfo.domain");
  }

  static List<String> violationFields(BadRequest badRequest) {
    return badRequest.getFieldViolationsList().stream()
        .map(BadRequest.FieldViolation::getField)
        .collect(Collectors.toList());
  }

  /**
   * Checks one batch answer against what CreateSession answers for {@code userId} (see batchUserIds); returns the
   * outcome's name.
   */
  String checkBatchAnswer(CreateSessionsResponse answer, String userId) throws Exception {
    expectEq(answer.getUserId(), userId, "answer user_id");
    CreateSessionsResponse.ResultCase outcome = answer.getResultCase();
    if (userId.strip().isEmpty()) {
      expectEq(outcome, CreateSessionsResponse.ResultCase.ERROR, "outcome for " + repr(userId));
      ErrorDetails d = ErrorDetails.fromStatus(answer.getError());
      expectEq(d.code, Status.Code.INVALID_ARGUMENT, "code for " + repr(userId));
      expectErrorInfo(d, "INVALID_USER_ID");
      expect(d.badRequest != null, "no BadRequest in the item's details");
      expectEq(violationFields(d.badRequest), List.of("user_id"), "BadRequest field violations");
      return "INVALID_ARGUMENT";
    }
    if (userId.equals("fault:status:404")) {
      expectEq(outcome, CreateSessionsResponse.ResultCase.ERROR, "outcome for " + repr(userId));
      ErrorDetails d = ErrorDetails.fromStatus(answer.getError());
      expectEq(d.code, Status.Code.NOT_FOUND, "code for " + repr(userId));
      expectErrorInfo(d, "UPSTREAM_NOT_FOUND");
      expectEq(
          d.errorInfo.getMetadataMap().get("upstream_status"), "404", "ErrorInfo.metadata upstream_status");
      return "NOT_FOUND";
    }
    expectEq(outcome, CreateSessionsResponse.ResultCase.SESSION, "outcome for " + repr(userId));
    checkSession(answer.getSession(), userId, true);
    return "session";
  }

  /** Five user ids: three new gamers, an invalid (empty) one, and an injected 404. */
  static List<String> batchUserIds(String prefix) {
    return List.of(prefix + "-0", "", prefix + "-1", "fault:status:404", prefix + "-2");
  }

  void runCase(String name, Case fn) {
    long started = System.nanoTime();
    try {
      String note = fn.run();
      passed++;
      long ms = (System.nanoTime() - started) / 1_000_000;
      System.out.println("[" + LANG + "] PASS " + name + " (" + ms + " ms)" + (note == null ? "" : ": " + note));
    } catch (CheckFailed e) {
      failed++;
      System.out.println("[" + LANG + "] FAIL " + name + ": " + e.getMessage());
    } catch (Exception e) { // an unexpected error is a failed case, not a crash
      failed++;
      System.out.println(
          "[" + LANG + "] FAIL " + name + ": unexpected " + e.getClass().getSimpleName() + ": " + e.getMessage());
    }
    System.out.flush();
  }

  public static void main(String[] argv) throws InterruptedException {
    String usage = "usage: Interop --target HOST:PORT [--user-id ID] [--expect-client-name NAME]";
    Map<String, String> args;
    try {
      args = Client.parseArgs(argv, Set.of("--target", "--user-id", "--expect-client-name"));
      if (!args.containsKey("--target")) {
        throw new IllegalArgumentException("--target is required");
      }
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage() + "\n" + usage);
      System.exit(2);
      return;
    }
    byte[] random = new byte[6];
    new SecureRandom().nextBytes(random);
    String userId = args.getOrDefault("--user-id", "interop-java-" + HexFormat.of().formatHex(random));
    String envClientName = System.getenv("INTEROP_EXPECT_CLIENT_NAME");
    String clientName =
        args.getOrDefault(
            "--expect-client-name",
            envClientName == null || envClientName.isEmpty() ? DEFAULT_CLIENT_NAME : envClientName);

    Interop interop = new Interop(clientName);
    ManagedChannel channel = Client.connect(args.get("--target"));
    try {
      interop.run(channel, userId);
    } finally {
      Client.close(channel);
    }
    System.out.println("[" + LANG + "] " + interop.passed + " passed, " + interop.failed + " failed");
    System.out.flush();
    System.exit(interop.failed == 0 ? 0 : 1);
  }

  private void run(ManagedChannel channel, String userId) {
    Map<String, CreateSessionResponse> first = new HashMap<>();

    runCase(
        "success: first call, every field (is_new_user true)",
        () -> {
          CreateSessionResponse s = Client.createSession(channel, userId, TIMEOUT);
          Set<String> checked = checkSession(s, userId, true);
          Set<String> all =
              CreateSessionResponse.getDescriptor().getFields().stream()
                  .map(FieldDescriptor::getName)
                  .collect(Collectors.toSet());
          Set<String> unchecked = new TreeSet<>(all);
          unchecked.removeAll(checked);
          expectEq(new ArrayList<>(unchecked), List.of(), "response fields without a check");
          first.put("session", s);
          return "user_id=" + userId + ", all " + all.size() + " fields checked";
        });

    runCase(
        "success: second call for the same user (is_new_user false)",
        () -> {
          expect(first.containsKey("session"), "the first call failed");
          CreateSessionResponse s = Client.createSession(channel, userId, TIMEOUT);
          checkSession(s, userId, false);
          expectEq(
              s.getWalletAddress(), first.get("session").getWalletAddress(), "wallet_address on the second call");
          expect(
              !s.getSessionId().equals(first.get("session").getSessionId()),
              "session_id is not fresh on the second call");
          return "is_new_user false, same wallet_address, fresh session_id";
        });

    for (String user : List.of("", "   ")) {
      runCase(
          "invalid user_id '" + user + "' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest",
          () -> {
            ErrorDetails d =
                expectStatus(() -> Client.createSession(channel, user, TIMEOUT), Status.Code.INVALID_ARGUMENT);
            expectErrorInfo(d, "INVALID_USER_ID");
            expect(d.badRequest != null, "no BadRequest in the details");
            expectEq(violationFields(d.badRequest), List.of("user_id"), "BadRequest field violations");
            return "BadRequest field=user_id (" + d.badRequest.getFieldViolations(0).getDescription() + ")";
          });
    }

    runCase(
        "fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo",
        () -> {
          ErrorDetails d =
              expectStatus(
                  () -> Client.createSession(channel, "fault:status:429", TIMEOUT),
                  Status.Code.RESOURCE_EXHAUSTED);
          expectErrorInfo(d, "UPSTREAM_RATE_LIMITED");
          Map<String, String> metadata = d.errorInfo.getMetadataMap();
          expectEq(metadata.get("upstream_status"), "429", "ErrorInfo.metadata upstream_status");
          String attempts = metadata.getOrDefault("attempts", "");
          expect(
              DIGITS_RE.matcher(attempts).matches() && Long.parseLong(attempts) >= 1,
              "ErrorInfo.metadata attempts: " + repr(attempts));
          expect(d.retryInfo != null, "no RetryInfo in the details");
          com.google.protobuf.Duration delay = d.retryInfo.getRetryDelay();
          expectEq(
              List.of(delay.getSeconds(), (long) delay.getNanos()),
              List.of(1L, 0L),
              "RetryInfo.retry_delay (seconds, nanos)");
          return "RetryInfo 1s, attempts=" + attempts;
        });

    runCase(
        "fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED",
        () -> {
          long started = System.nanoTime();
          ErrorDetails d =
              expectStatus(
                  () -> Client.createSession(channel, "fault:delay:3000", Duration.ofMillis(300)),
                  Status.Code.DEADLINE_EXCEEDED);
          long elapsedMs = (System.nanoTime() - started) / 1_000_000;
          expect(elapsedMs < 2000, "DEADLINE_EXCEEDED only after " + elapsedMs + " ms (deadline 300 ms)");
          String reason = d.errorInfo != null ? d.errorInfo.getReason() : "none (client-side deadline)";
          return "after " + elapsedMs + " ms, ErrorInfo reason: " + reason;
        });

    runCase(
        "batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives",
        () -> {
          List<String> userIds = batchUserIds(userId + "-stream");
          List<CreateSessionsResponse> answers = Client.createSessions(channel, userIds, TIMEOUT);
          expectEq(answers.size(), userIds.size(), "answers");
          Map<String, CreateSessionsResponse> byUser = new LinkedHashMap<>();
          for (CreateSessionsResponse answer : answers) {
            byUser.put(answer.getUserId(), answer);
          }
          expectEq(
              new ArrayList<>(new TreeSet<>(byUser.keySet())),
              new ArrayList<>(new TreeSet<>(userIds)),
              "one answer per user_id");
          List<String> outcomes = new ArrayList<>();
          for (String u : userIds) {
            outcomes.add(checkBatchAnswer(byUser.get(u), u));
          }
          return answers.size() + " answers: " + String.join(", ", outcomes);
        });

    runCase(
        "batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order",
        () -> {
          List<String> userIds = batchUserIds(userId + "-batch");
          List<CreateSessionsResponse> results =
              Client.createSessionBatch(channel, userIds, TIMEOUT).getResultsList();
          expectEq(
              results.stream().map(CreateSessionsResponse::getUserId).collect(Collectors.toList()),
              userIds,
              "results in request order");
          List<String> outcomes = new ArrayList<>();
          for (int i = 0; i < results.size(); i++) {
            outcomes.add(checkBatchAnswer(results.get(i), userIds.get(i)));
          }
          return results.size() + " results in order: " + String.join(", ", outcomes);
        });

    runCase(
        "batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest",
        () -> {
          List<String> userIds = new ArrayList<>();
          for (int i = 0; i < 101; i++) {
            userIds.add(userId + "-big-" + i);
          }
          ErrorDetails d =
              expectStatus(
                  () -> Client.createSessionBatch(channel, userIds, TIMEOUT), Status.Code.INVALID_ARGUMENT);
          expectErrorInfo(d, "INVALID_BATCH_SIZE");
          expect(d.badRequest != null, "no BadRequest in the details");
          expectEq(violationFields(d.badRequest), List.of("user_ids"), "BadRequest field violations");
          return "BadRequest field=user_ids (" + d.badRequest.getFieldViolations(0).getDescription() + ")";
        });

    for (String service : List.of("", Client.SESSION_SERVICE)) {
      runCase(
          "health check '" + service + "' -> SERVING",
          () -> {
            expectEq(Client.healthCheck(channel, service, Duration.ofSeconds(5)), "SERVING", "health of " + repr(service));
            return "SERVING";
          });
    }
  }
}
