package io.kgen.gateway.example;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.Timestamp;
import io.grpc.Channel;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import io.kgen.session.v1.CreateSessionBatchRequest;
import io.kgen.session.v1.CreateSessionBatchResponse;
import io.kgen.session.v1.CreateSessionRequest;
import io.kgen.session.v1.CreateSessionResponse;
import io.kgen.session.v1.CreateSessionsResponse;
import io.kgen.session.v1.SessionServiceGrpc;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Calls {@code kgen.session.v1.SessionService/CreateSession} on a kgen-gateway and prints the session or the error.
 *
 * <pre>
 * mvn -q -f examples/java/pom.xml compile exec:java -Dexec.args="--target 127.0.0.1:50051 --user-id FTC_User1"
 * </pre>
 *
 * <p>Flags: {@code --target HOST:PORT} (default 127.0.0.1:50051, plaintext h2c), {@code --user-id ID} (required),
 * {@code --timeout SECONDS} (default 10). Exit status: 0 on success, 1 when the call failed (the status and its
 * details are printed), 2 for bad usage.
 *
 * <p>On failure the gateway's machine-readable details, carried in the {@code grpc-status-details-bin} trailer as a
 * serialized {@code google.rpc.Status}, are decoded ({@link ErrorDetails}) and printed: ErrorInfo (reason, domain,
 * metadata), RetryInfo (how long to wait) and BadRequest (which field was wrong).
 *
 * <p>The static helpers (stubs, error decoding, time parsing, token decoding) are used by {@link Interop}.
 */
public final class Client {
  /** The full name of the gateway's service, as the health service knows it. */
  public static final String SESSION_SERVICE = SessionServiceGrpc.SERVICE_NAME;

  /** Fields that are secrets (access/refresh tokens): printed redacted, never in full. */
  private static final Set<String> SECRET_FIELDS = Set.of("access_token", "refresh_token");

  private static final Pattern GO_TIME =
      Pattern.compile(
          "^(\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2})(?:\\.(\\d{1,9}))? ([+-])(\\d{2})(\\d{2}) [A-Za-z0-9+-]+$");
  private static final DateTimeFormatter GO_WALL = DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss");

  private Client() {}

  /** A plaintext (h2c) channel to the gateway; use {@code TlsChannelCredentials} when it serves TLS. */
  public static ManagedChannel connect(String target) {
    return Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();
  }

  /** Shuts the channel down, waiting a little for calls in flight. */
  public static void close(ManagedChannel channel) throws InterruptedException {
    channel.shutdown();
    if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
      channel.shutdownNow();
    }
  }

  /**
   * One CreateSession call with a deadline {@code timeout} from now (always set one).
   *
   * @throws StatusRuntimeException when the call fails; decode it with {@link ErrorDetails#fromThrowable}
   */
  public static CreateSessionResponse createSession(Channel channel, String userId, Duration timeout) {
    return SessionServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS)
        .createSession(CreateSessionRequest.newBuilder().setUserId(userId).build());
  }

  /**
   * CreateSessions: streams one request per user id, half-closes, and returns every answer. Answers arrive as their
   * upstream calls complete, not in request order: match them by {@code user_id}. A failed item carries its own
   * {@code google.rpc.Status} in {@code error} (decode it with {@link ErrorDetails#fromStatus}); the call throws
   * only when the stream itself fails (deadline, shutdown, ...).
   *
   * @throws StatusRuntimeException when the stream fails
   */
  public static List<CreateSessionsResponse> createSessions(Channel channel, List<String> userIds, Duration timeout)
      throws InterruptedException {
    List<CreateSessionsResponse> answers = Collections.synchronizedList(new ArrayList<>());
    CompletableFuture<Void> done = new CompletableFuture<>();
    StreamObserver<CreateSessionRequest> requests =
        SessionServiceGrpc.newStub(channel)
            .withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS)
            .createSessions(
                new StreamObserver<>() {
                  @Override
                  public void onNext(CreateSessionsResponse answer) {
                    answers.add(answer);
                  }

                  @Override
                  public void onError(Throwable error) {
                    done.completeExceptionally(error);
                  }

                  @Override
                  public void onCompleted() {
                    done.complete(null);
                  }
                });
    for (String userId : userIds) {
      requests.onNext(CreateSessionRequest.newBuilder().setUserId(userId).build());
    }
    requests.onCompleted();
    try {
      // The deadline ends the call; the extra second only guards against a stream that never closes.
      done.get(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof RuntimeException) {
        throw (RuntimeException) e.getCause();
      }
      throw new IllegalStateException(e.getCause());
    } catch (TimeoutException e) {
      throw new IllegalStateException("CreateSessions did not end after its deadline", e);
    }
    synchronized (answers) {
      return new ArrayList<>(answers);
    }
  }

  /**
   * CreateSessionBatch: the unary form, for 1 to 100 user ids; results come in request order.
   *
   * @throws StatusRuntimeException when the call itself fails
   */
  public static CreateSessionBatchResponse createSessionBatch(
      Channel channel, List<String> userIds, Duration timeout) {
    return SessionServiceGrpc.newBlockingStub(channel)
        .withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS)
        .createSessionBatch(CreateSessionBatchRequest.newBuilder().addAllUserIds(userIds).build());
  }

  /** {@code grpc.health.v1.Health/Check}; returns the status name (e.g. "SERVING"). */
  public static String healthCheck(Channel channel, String service, Duration timeout) {
    return HealthGrpc.newBlockingStub(channel)
        .withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS)
        .check(HealthCheckRequest.newBuilder().setService(service).build())
        .getStatus()
        .name();
  }

  /**
   * Parses Go's {@code time.Time} String() format ({@code 2024-08-20 08:32:13.025599965 +0000 UTC}) into a
   * Timestamp, to the nanosecond.
   *
   * @throws IllegalArgumentException if the text is not in that format
   */
  public static Timestamp parseGoTime(String text) {
    Matcher m = GO_TIME.matcher(text);
    if (!m.matches()) {
      throw new IllegalArgumentException("not Go's time format: " + quote(text));
    }
    long wall = LocalDateTime.parse(m.group(1), GO_WALL).toEpochSecond(ZoneOffset.UTC);
    int offset = (Integer.parseInt(m.group(4)) * 3600 + Integer.parseInt(m.group(5)) * 60);
    if (m.group(3).equals("-")) {
      offset = -offset;
    }
    String fraction = m.group(2) == null ? "" : m.group(2);
    int nanos = Integer.parseInt((fraction + "000000000").substring(0, 9));
    return Timestamp.newBuilder().setSeconds(wall - offset).setNanos(nanos).build();
  }

  /**
   * Decodes one base64url (unpadded) JSON part of a JWT.
   *
   * @throws IllegalArgumentException if it is not base64url
   * @throws com.google.gson.JsonParseException if it is not JSON
   */
  public static JsonElement decodeJwtPart(String part) {
    byte[] json = Base64.getUrlDecoder().decode(part);
    return JsonParser.parseString(new String(json, StandardCharsets.UTF_8));
  }

  /** One {@code name: value} line per field, in proto order; tokens are redacted. */
  public static List<String> describeSession(CreateSessionResponse session) {
    List<String> lines = new ArrayList<>();
    for (FieldDescriptor field : CreateSessionResponse.getDescriptor().getFields()) {
      String name = field.getName();
      String value;
      if (name.equals("session_started_at")) {
        value =
            session.hasSessionStartedAt()
                ? Instant.ofEpochSecond(
                        session.getSessionStartedAt().getSeconds(), session.getSessionStartedAt().getNanos())
                    .toString()
                : "(unset: the gateway could not parse session_start_time)";
      } else if (name.equals("indigg_id") && !session.hasIndiggId()) {
        value = "(unset)";
      } else if (SECRET_FIELDS.contains(name)) {
        String token = (String) session.getField(field);
        value = "[redacted, " + token.length() + " chars, " + token.split("\\.", -1).length + " parts]";
      } else {
        Object v = session.getField(field);
        value = v instanceof String ? quote((String) v) : String.valueOf(v);
      }
      lines.add(name + ": " + value);
    }
    return lines;
  }

  /** The status and every detail, one line each. */
  public static List<String> describeError(ErrorDetails details) {
    List<String> lines = new ArrayList<>();
    lines.add("error: " + details.code + ": " + details.message);
    if (!details.hasStatusDetails) {
      lines.add("  (no grpc-status-details-bin trailer)");
    }
    if (details.errorInfo != null) {
      lines.add(
          "  ErrorInfo: reason="
              + details.errorInfo.getReason()
              + " domain="
              + details.errorInfo.getDomain()
              + " metadata="
              + new TreeMap<>(details.errorInfo.getMetadataMap()));
    }
    if (details.retryInfo != null) {
      com.google.protobuf.Duration delay = details.retryInfo.getRetryDelay();
      BigDecimal seconds = BigDecimal.valueOf(delay.getSeconds()).add(BigDecimal.valueOf(delay.getNanos(), 9));
      lines.add("  RetryInfo: retry_delay=" + seconds.stripTrailingZeros().toPlainString() + "s");
    }
    if (details.badRequest != null) {
      for (var violation : details.badRequest.getFieldViolationsList()) {
        lines.add("  BadRequest: field=" + violation.getField() + " description=" + violation.getDescription());
      }
    }
    for (String typeUrl : details.otherDetails) {
      lines.add("  other detail: " + typeUrl);
    }
    return lines;
  }

  /** A string in double quotes, with quotes, backslashes and control characters escaped. */
  public static String quote(String text) {
    StringBuilder out = new StringBuilder("\"");
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (c == '"' || c == '\\') {
        out.append('\\').append(c);
      } else if (c < 0x20 || c == 0x7f) {
        out.append(String.format("\\u%04x", (int) c));
      } else {
        out.append(c);
      }
    }
    return out.append('"').toString();
  }

  /**
   * A minimal parser (no dependency) for {@code --name value} and {@code --name=value}; every flag takes a value,
   * which may be empty ({@code --user-id=}, handy inside {@code -Dexec.args}, which drops a quoted empty string). A
   * flag not in {@code known}, or one without a value, is an error.
   *
   * @throws IllegalArgumentException on bad usage
   */
  public static Map<String, String> parseArgs(String[] argv, Set<String> known) {
    Map<String, String> args = new HashMap<>();
    for (int i = 0; i < argv.length; i++) {
      String flag = argv[i];
      String value;
      int equals = flag.indexOf('=');
      if (flag.startsWith("--") && equals > 0) {
        value = flag.substring(equals + 1);
        flag = flag.substring(0, equals);
      } else if (i + 1 < argv.length) {
        value = argv[++i];
      } else {
        value = null;
      }
      if (!known.contains(flag)) {
        throw new IllegalArgumentException("unknown argument: " + flag);
      }
      if (value == null) {
        throw new IllegalArgumentException(flag + " needs a value");
      }
      args.put(flag, value);
    }
    return args;
  }

  public static void main(String[] argv) throws InterruptedException {
    String usage = "usage: Client --target HOST:PORT --user-id ID [--timeout SECONDS]";
    String target;
    String userId;
    Duration timeout;
    try {
      Map<String, String> args = parseArgs(argv, Set.of("--target", "--user-id", "--timeout"));
      target = args.getOrDefault("--target", "127.0.0.1:50051");
      userId = args.get("--user-id");
      if (userId == null) {
        throw new IllegalArgumentException("--user-id is required");
      }
      double seconds = Double.parseDouble(args.getOrDefault("--timeout", "10"));
      if (!(seconds > 0)) {
        throw new IllegalArgumentException("--timeout must be a positive number of seconds");
      }
      timeout = Duration.ofNanos((long) (seconds * 1e9));
    } catch (IllegalArgumentException e) {
      System.err.println(e.getMessage() + "\n" + usage);
      System.exit(2);
      return;
    }

    ManagedChannel channel = connect(target);
    int status = 0;
    try {
      for (String line : describeSession(createSession(channel, userId, timeout))) {
        System.out.println(line);
      }
    } catch (StatusRuntimeException error) {
      status = 1;
      try {
        for (String line : describeError(ErrorDetails.fromThrowable(error))) {
          System.out.println(line);
        }
      } catch (com.google.protobuf.InvalidProtocolBufferException e) {
        System.out.println("error: " + error.getStatus() + " (its details do not decode: " + e.getMessage() + ")");
      }
    } finally {
      close(channel);
    }
    System.out.flush();
    if (status != 0) {
      System.exit(status);
    }
  }
}
