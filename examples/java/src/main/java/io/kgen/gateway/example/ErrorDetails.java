package io.kgen.gateway.example;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * A failed call: its code and message, and the {@code google.rpc} details the gateway sends in the
 * {@code grpc-status-details-bin} trailer (or, for a failed batch item, in {@code CreateSessionsResponse.error}).
 *
 * <p>Every status the gateway returns carries an {@link ErrorInfo} (domain {@code kgen-gateway} and a reason);
 * {@link RetryInfo} says how long to wait, {@link BadRequest} which request field was wrong.
 */
public final class ErrorDetails {
  /** The gRPC status code. */
  public final Status.Code code;
  /** The status message. */
  public final String message;
  /** Whether a {@code google.rpc.Status} came with the error (absent, e.g., for a client-side deadline). */
  public final boolean hasStatusDetails;
  /** The ErrorInfo detail, or null. */
  public final ErrorInfo errorInfo;
  /** The RetryInfo detail, or null. */
  public final RetryInfo retryInfo;
  /** The BadRequest detail, or null. */
  public final BadRequest badRequest;
  /** The type URLs of any other details. */
  public final List<String> otherDetails;

  private ErrorDetails(
      Status.Code code,
      String message,
      boolean hasStatusDetails,
      ErrorInfo errorInfo,
      RetryInfo retryInfo,
      BadRequest badRequest,
      List<String> otherDetails) {
    this.code = code;
    this.message = message;
    this.hasStatusDetails = hasStatusDetails;
    this.errorInfo = errorInfo;
    this.retryInfo = retryInfo;
    this.badRequest = badRequest;
    this.otherDetails = Collections.unmodifiableList(otherDetails);
  }

  /**
   * Decodes a failed call ({@code StatusRuntimeException} or {@code StatusException}). {@link
   * StatusProto#fromThrowable} returns the {@code google.rpc.Status} of the {@code grpc-status-details-bin} trailer,
   * or null when there is none; it refuses one whose code differs from the call's own.
   *
   * @throws InvalidProtocolBufferException if a known detail does not decode
   */
  public static ErrorDetails fromThrowable(Throwable error) throws InvalidProtocolBufferException {
    Status status = Status.fromThrowable(error);
    com.google.rpc.Status details = StatusProto.fromThrowable(error);
    String message = status.getDescription() == null ? "" : status.getDescription();
    if (details == null) {
      return new ErrorDetails(status.getCode(), message, false, null, null, null, new ArrayList<>());
    }
    return decode(status.getCode(), message, details);
  }

  /**
   * Decodes the {@code google.rpc.Status} of a failed batch item: the same code, message and details {@code
   * CreateSession} carries in its trailer.
   *
   * @throws InvalidProtocolBufferException if a known detail does not decode
   */
  public static ErrorDetails fromStatus(com.google.rpc.Status status) throws InvalidProtocolBufferException {
    return decode(Status.fromCodeValue(status.getCode()).getCode(), status.getMessage(), status);
  }

  private static ErrorDetails decode(Status.Code code, String message, com.google.rpc.Status status)
      throws InvalidProtocolBufferException {
    ErrorInfo errorInfo = null;
    RetryInfo retryInfo = null;
    BadRequest badRequest = null;
    List<String> other = new ArrayList<>();
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        errorInfo = detail.unpack(ErrorInfo.class);
      } else if (detail.is(RetryInfo.class)) {
        retryInfo = detail.unpack(RetryInfo.class);
      } else if (detail.is(BadRequest.class)) {
        badRequest = detail.unpack(BadRequest.class);
      } else {
        other.add(detail.getTypeUrl());
      }
    }
    return new ErrorDetails(code, message, true, errorInfo, retryInfo, badRequest, other);
  }
}
