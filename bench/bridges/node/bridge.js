#!/usr/bin/env node
// A Node.js gRPC -> REST bridge for KGeN sessions, the comparison point of scripts/bench-bridges.sh.
//
// Serves kgen.session.v1.SessionService/CreateSession (@grpc/grpc-js; the contract is loaded at start-up with
// @grpc/proto-loader from ../../../proto, no code generation; google/protobuf/timestamp.proto comes bundled with
// protobufjs) and makes the same upstream call as kgen-gateway: POST ${KGEN_UPSTREAM_URL}/s2s/session/ with
// x-client-id / x-client-secret and {"user_id": ...}, through one keep-alive node:http(s) Agent. Maps KGeN's JSON
// session onto CreateSessionResponse (including the parsed session_started_at) and upstream failures onto gRPC
// status codes like the gateway's error table (codes only, no google.rpc details, no retries). Honours the caller's
// deadline on the upstream request and drops the request when the caller cancels. One process, no per-call logging.
//
//   KGEN_UPSTREAM_URL=http://127.0.0.1:8080 KGEN_CLIENT_ID=id KGEN_CLIENT_SECRET=secret node bridge.js --port 50062
//
// Environment: KGEN_UPSTREAM_URL (required), KGEN_CLIENT_ID, KGEN_CLIENT_SECRET, KGEN_UPSTREAM_TIMEOUT (seconds,
// default 5), BRIDGE_UPSTREAM_POOL (most upstream connections, default 128), PORT (when --port is not given).
// With --port 0 a free port is picked; the line `bridge.js: serving addr=127.0.0.1:PORT ...` (stderr) says which.
'use strict';

const http = require('node:http');
const https = require('node:https');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { status: Code } = grpc;
const MAX_USER_ID_BYTES = 256;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

const STRING_FIELDS = [
  'session_id', 'user_id', 'name', 'username', 'email', 'device_id', 'phonenumber', 'date_joined', 'playertag',
  'location', 'location_name', 'device_model', 'screen_height', 'screen_width', 'os_name', 'os_version',
  'browser_name', 'indigg_wallet_address', 'third_party_client_id', 'third_party_client_name',
  'namespaced_third_party_user_id', 'wallet_address', 'access_token', 'refresh_token', 'linked_phone',
  'session_start_time',
];

// Go's time.Time.String() ("2024-08-20 08:32:13.025599965 +0000 UTC", maybe with " m=+0.5") or RFC 3339.
const TIME_RE =
  /^\s*(\d{4})-(\d{2})-(\d{2})[ Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2}))(?:\s+[A-Za-z]+)?(?:\s+m=[+-][\d.]+)?\s*$/;

class UpstreamError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function parseTime(raw) {
  const m = TIME_RE.exec(raw);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 60) {
    return null;
  }
  let seconds = Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
  if (m[9]) {
    const offset = Number(m[10]) * 3600 + Number(m[11]) * 60;
    seconds -= m[9] === '+' ? offset : -offset;
  }
  const nanos = m[7] ? Number(m[7].padEnd(9, '0')) : 0;
  return { seconds, nanos };
}

function asString(value) {
  if (value === null || value === undefined) return '';
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
    case 'boolean':
      return String(value);
    default:
      throw new Error('not a scalar');
  }
}

function asInt(value) {
  if (value === null || value === undefined || value === '') return 0;
  const number = typeof value === 'number' ? value : typeof value === 'string' ? Number(value.trim()) : NaN;
  if (!Number.isInteger(number)) throw new Error('not an integer');
  return number;
}

function asBool(value) {
  if (value === null || value === undefined || value === '') return false;
  if (value === true || value === 1 || value === '1' || value === 'true') return true;
  if (value === false || value === 0 || value === '0' || value === 'false') return false;
  throw new Error('not a boolean');
}

/** KGeN's 2xx body as a CreateSessionResponse object; throws UpstreamError(INTERNAL) when it is not a session. */
function toResponse(body) {
  let data;
  try {
    data = JSON.parse(body);
  } catch {
    throw new UpstreamError(Code.INTERNAL, 'KGeN answered 2xx with a body that is not JSON');
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new UpstreamError(Code.INTERNAL, 'KGeN answered 2xx with JSON that is not an object');
  }
  const response = {};
  try {
    for (const name of STRING_FIELDS) response[name] = asString(data[name]);
    response.level = asInt(data.level);
    response.rank = asInt(data.rank);
    response.is_new_user = asBool(data.is_new_user);
    if (data.indigg_id !== null && data.indigg_id !== undefined) response.indigg_id = asString(data.indigg_id);
  } catch (e) {
    throw new UpstreamError(Code.INTERNAL, `KGeN's session has a field of the wrong shape (${e.message})`);
  }
  if (!response.session_id.trim()) throw new UpstreamError(Code.INTERNAL, "KGeN's session has no session_id");
  const startedAt = parseTime(response.session_start_time);
  if (startedAt) response.session_started_at = startedAt;
  return response;
}

/** The gRPC code for a non-2xx answer, as in the gateway's error table. */
function statusCode(httpStatus) {
  if (httpStatus === 400 || httpStatus === 422) return Code.INVALID_ARGUMENT;
  if (httpStatus === 401 || httpStatus === 403) return Code.INTERNAL;
  if (httpStatus === 404) return Code.NOT_FOUND;
  if (httpStatus === 408) return Code.DEADLINE_EXCEEDED;
  if (httpStatus === 409) return Code.ABORTED;
  if (httpStatus === 429) return Code.RESOURCE_EXHAUSTED;
  if (httpStatus >= 400 && httpStatus < 500) return Code.FAILED_PRECONDITION;
  if (httpStatus === 500) return Code.INTERNAL;
  if (httpStatus === 501) return Code.UNIMPLEMENTED;
  if (httpStatus >= 500 && httpStatus < 600) return Code.UNAVAILABLE;
  return Code.UNKNOWN;
}

function errorMessage(body) {
  try {
    const data = JSON.parse(body);
    if (data && typeof data.message === 'string') return data.message.slice(0, 256);
  } catch {
    // not JSON: quote the text
  }
  return body.toString('utf8', 0, 256);
}

function main() {
  const portFlag = process.argv.indexOf('--port');
  const port = Number(portFlag >= 0 ? process.argv[portFlag + 1] : process.env.PORT || 50062);
  const upstream = process.env.KGEN_UPSTREAM_URL;
  if (!upstream) {
    console.error('bridge.js: KGEN_UPSTREAM_URL is required');
    process.exit(2);
  }
  const endpoint = new URL('s2s/session/', upstream.endsWith('/') ? upstream : `${upstream}/`);
  const transport = endpoint.protocol === 'https:' ? https : http;
  const agent = new transport.Agent({
    keepAlive: true,
    keepAliveMsecs: 30_000,
    maxSockets: Number(process.env.BRIDGE_UPSTREAM_POOL || 128),
    maxFreeSockets: Number(process.env.BRIDGE_UPSTREAM_POOL || 128),
    scheduling: 'lifo',
  });
  const upstreamTimeoutMs = Number(process.env.KGEN_UPSTREAM_TIMEOUT || 5) * 1000;
  const requestOptions = {
    method: 'POST',
    protocol: endpoint.protocol,
    hostname: endpoint.hostname,
    port: endpoint.port,
    path: endpoint.pathname,
    agent,
  };
  const baseHeaders = {
    'x-client-id': process.env.KGEN_CLIENT_ID || '',
    'x-client-secret': process.env.KGEN_CLIENT_SECRET || '',
    'content-type': 'application/json',
    accept: 'application/json',
  };

  function createSession(call, callback) {
    const userId = call.request.user_id;
    if (!userId.trim() || Buffer.byteLength(userId) > MAX_USER_ID_BYTES || CONTROL_CHARS.test(userId)) {
      callback({
        code: Code.INVALID_ARGUMENT,
        details: 'user_id must be non-empty, at most 256 bytes and free of control characters',
      });
      return;
    }
    let timeoutMs = upstreamTimeoutMs;
    const deadline = call.getDeadline();
    if (deadline instanceof Date || Number.isFinite(deadline)) {
      const remaining = Number(deadline) - Date.now();
      if (remaining <= 0) {
        callback({ code: Code.DEADLINE_EXCEEDED, details: 'deadline passed before calling KGeN' });
        return;
      }
      timeoutMs = Math.min(timeoutMs, remaining);
    }

    const body = JSON.stringify({ user_id: userId });
    let done = false;
    const finish = (error, response) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      callback(error, response);
    };
    const req = transport.request(
      { ...requestOptions, headers: { ...baseHeaders, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', () => finish({ code: Code.UNAVAILABLE, details: 'KGeN reset the connection' }));
        res.on('end', () => {
          const payload = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
          const status = res.statusCode;
          try {
            if (status >= 200 && status < 300) {
              finish(null, toResponse(payload));
            } else {
              finish({ code: statusCode(status), details: `KGeN answered HTTP ${status}: ${errorMessage(payload)}` });
            }
          } catch (e) {
            finish({ code: e.code ?? Code.INTERNAL, details: e.message });
          }
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ code: Code.DEADLINE_EXCEEDED, details: 'KGeN did not answer in time' });
    }, timeoutMs);
    req.on('error', (e) => finish({ code: Code.UNAVAILABLE, details: `KGeN unreachable: ${e.message}` }));
    call.on('cancelled', () => {
      req.destroy();
      done = true;
      clearTimeout(timer);
    });
    req.end(body);
  }

  const definition = protoLoader.loadSync('kgen/session/v1/session.proto', {
    keepCase: true,
    longs: String,
    defaults: true,
    oneofs: true,
    includeDirs: [path.resolve(__dirname, '..', '..', '..', 'proto')],
  });
  const { SessionService } = grpc.loadPackageDefinition(definition).kgen.session.v1;
  const server = new grpc.Server();
  server.addService(SessionService.service, { CreateSession: createSession });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
    if (error) {
      console.error(`bridge.js: cannot listen on 127.0.0.1:${port}: ${error.message}`);
      process.exit(1);
    }
    console.error(`bridge.js: serving addr=127.0.0.1:${bound} -> ${endpoint.href}`);
  });
  const stop = () => server.tryShutdown(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
