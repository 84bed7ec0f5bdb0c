#!/usr/bin/env node
// Calls kgen.session.v1.SessionService/CreateSession on a kgen-gateway and prints the session or the error.
//
//   node client.js --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10]
//
// The contract is loaded at run time with @grpc/proto-loader from ../../proto (no code generation). On failure the
// gateway's machine-readable details, carried in the `grpc-status-details-bin` trailer as a serialized
// google.rpc.Status, are decoded with protobufjs from the vendored google/rpc protos (protos/, see protos/README.md)
// and printed: ErrorInfo (reason, domain, metadata), RetryInfo (how long to wait), BadRequest (which field was wrong).
//
// The helpers are exported for interop.js.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const INCLUDE_DIRS = [path.resolve(__dirname, '..', '..', 'proto'), path.resolve(__dirname, 'protos')];
const SESSION_SERVICE = 'kgen.session.v1.SessionService';
// Secrets (access/refresh tokens): printed redacted, never in full.
const SECRET_FIELDS = new Set(['access_token', 'refresh_token']);

const LOADER_OPTIONS = {
  keepCase: true, // field names exactly as in the proto (session_id, not sessionId)
  longs: String, // int64 (level, rank, Timestamp.seconds) as decimal strings: no precision loss
  enums: String,
  defaults: true, // unset scalars arrive as '' / '0' / false, like every other language
  oneofs: true, // proto3 `optional` (indigg_id) is a synthetic oneof: `_indigg_id` names the field when set
  includeDirs: INCLUDE_DIRS,
};

function loadPackage(file) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(file, LOADER_OPTIONS));
}

const sessionPackage = loadPackage('kgen/session/v1/session.proto');
const healthPackage = loadPackage('grpc/health/v1/health.proto');

// The field names of CreateSessionResponse, in proto order (from the loaded descriptor).
const RESPONSE_FIELDS = sessionPackage.kgen.session.v1.CreateSessionResponse.type.field.map((f) => f.name);

// google.rpc.Status and its detail messages, for decoding grpc-status-details-bin.
const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (origin, target) => {
  for (const dir of INCLUDE_DIRS) {
    const candidate = path.join(dir, target);
    if (fs.existsSync(candidate)) return candidate;
  }
  return target; // google/protobuf/*.proto come bundled with protobufjs
};
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = rpcRoot.lookupType('google.rpc.Status');
const TO_OBJECT = { longs: String, enums: String, defaults: true };

/** A plaintext (h2c) client; use grpc.credentials.createSsl() when the gateway serves TLS. */
function connect(target) {
  return {
    session: new sessionPackage.kgen.session.v1.SessionService(target, grpc.credentials.createInsecure()),
    health: new healthPackage.grpc.health.v1.Health(target, grpc.credentials.createInsecure()),
    close() {
      this.session.close();
      this.health.close();
    },
  };
}

/** One CreateSession call with a deadline `timeoutMs` from now (always set one). Rejects with a grpc ServiceError. */
function createSession(clients, userId, timeoutMs) {
  return new Promise((resolve, reject) => {
    clients.session.CreateSession({ user_id: userId }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/**
 * CreateSessions: streams one request per user id and resolves to every answer. Answers arrive as their upstream
 * calls complete, not in request order: match them by `user_id`. A failed item carries its own google.rpc.Status in
 * `error` (decode it with decodeStatus); the promise rejects only when the stream itself fails.
 */
function createSessions(clients, userIds, timeoutMs) {
  return new Promise((resolve, reject) => {
    const answers = [];
    const call = clients.session.CreateSessions({ deadline: Date.now() + timeoutMs });
    call.on('data', (answer) => answers.push(answer));
    call.on('error', reject);
    call.on('end', () => resolve(answers));
    for (const userId of userIds) call.write({ user_id: userId });
    call.end();
  });
}

/** CreateSessionBatch: the unary form, for 1 to 100 user ids; resolves to the results, in request order. */
function createSessionBatch(clients, userIds, timeoutMs) {
  return new Promise((resolve, reject) => {
    clients.session.CreateSessionBatch({ user_ids: userIds }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res.results),
    );
  });
}

/** grpc.health.v1.Health/Check; resolves to the status name (e.g. "SERVING"). */
function healthCheck(clients, service = '', timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    clients.health.Check({ service }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res.status),
    );
  });
}

/**
 * Decodes the google.rpc.Status in the grpc-status-details-bin trailer of a failed call:
 * { code, codeName, message, hasStatusDetails, errorInfo, retryInfo, badRequest, otherDetails }.
 */
function decodeError(err) {
  const details = {
    code: err.code,
    codeName: grpc.status[err.code] ?? String(err.code),
    message: err.details ?? '',
    hasStatusDetails: false,
    errorInfo: null,
    retryInfo: null,
    badRequest: null,
    otherDetails: [],
  };
  // Absent when, e.g., the deadline expired in the client before the server answered.
  const [raw] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!raw) return details;
  return addDetails(details, Status.toObject(Status.decode(raw), TO_OBJECT));
}

/**
 * Decodes the google.rpc.Status of a failed batch item (CreateSessionsResponse.error, as proto-loader gives it): the
 * same code, message and details CreateSession carries in its grpc-status-details-bin trailer.
 */
function decodeStatus(status) {
  const details = {
    code: status.code,
    codeName: grpc.status[status.code] ?? String(status.code),
    message: status.message,
    hasStatusDetails: false,
    errorInfo: null,
    retryInfo: null,
    badRequest: null,
    otherDetails: [],
  };
  return addDetails(details, status);
}

function addDetails(details, status) {
  details.hasStatusDetails = true;
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const key = { 'google.rpc.ErrorInfo': 'errorInfo', 'google.rpc.RetryInfo': 'retryInfo', 'google.rpc.BadRequest': 'badRequest' }[typeName];
    if (!key) {
      details.otherDetails.push(any.type_url);
      continue;
    }
    const type = rpcRoot.lookupType(typeName);
    details[key] = type.toObject(type.decode(any.value), TO_OBJECT);
  }
  return details;
}

/** A google.protobuf.Duration object ({seconds: '1', nanos: 0}) in seconds. */
function durationSeconds(d) {
  return Number(d.seconds) + d.nanos / 1e9;
}

const GO_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2}) [A-Za-z0-9+-]+$/;

/**
 * Parses Go's time.Time String() format (`2024-08-20 08:32:13.025599965 +0000 UTC`) into
 * { seconds: BigInt Unix seconds, nanos }, to the nanosecond (Date keeps only milliseconds).
 */
function parseGoTime(text) {
  const m = GO_TIME.exec(text);
  if (!m) throw new Error(`not Go's time format: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, fraction = '', sign, oh, om] = m;
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) / 1000;
  const offset = (+oh * 3600 + +om * 60) * (sign === '+' ? 1 : -1);
  return { seconds: BigInt(wall - offset), nanos: Number(fraction.padEnd(9, '0')) };
}

/** google.protobuf.Timestamp object as RFC 3339 with nanoseconds. */
function timestampString(ts) {
  const iso = new Date(Number(ts.seconds) * 1000).toISOString().slice(0, 19);
  return `${iso}.${String(ts.nanos).padStart(9, '0')}Z`;
}

/** Decodes one unpadded base64url JSON part of a JWT. */
function decodeJwtPart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/** One `name: value` line per field, in proto order; tokens are redacted. */
function describeSession(s) {
  return RESPONSE_FIELDS.map((name) => {
    let value;
    if (name === 'session_started_at') {
      value = s.session_started_at ? timestampString(s.session_started_at) : '(unset: the gateway could not parse session_start_time)';
    } else if (name === 'indigg_id' && s._indigg_id !== 'indigg_id') {
      value = '(unset)';
    } else if (SECRET_FIELDS.has(name)) {
      value = `[redacted, ${s[name].length} chars, ${s[name].split('.').length} parts]`;
    } else {
      value = JSON.stringify(s[name]);
    }
    return `${name}: ${value}`;
  });
}

function describeError(d) {
  const lines = [`error: ${d.codeName}: ${d.message}`];
  if (!d.hasStatusDetails) lines.push('  (no grpc-status-details-bin trailer)');
  if (d.errorInfo) {
    const metadata = Object.fromEntries(Object.entries(d.errorInfo.metadata).sort());
    lines.push(`  ErrorInfo: reason=${d.errorInfo.reason} domain=${d.errorInfo.domain} metadata=${JSON.stringify(metadata)}`);
  }
  if (d.retryInfo) lines.push(`  RetryInfo: retry_delay=${durationSeconds(d.retryInfo.retry_delay)}s`);
  if (d.badRequest) {
    for (const v of d.badRequest.field_violations) lines.push(`  BadRequest: field=${v.field} description=${v.description}`);
  }
  for (const url of d.otherDetails) lines.push(`  other detail: ${url}`);
  return lines;
}

/** Minimal `--name value` parser (no dependency). */
function parseArgs(argv, defaults) {
  const args = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (!flag.startsWith('--') || i + 1 >= argv.length) throw new Error(`usage: expected --flag value, got ${flag}`);
    args[flag.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[i + 1];
  }
  return args;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), { target: '127.0.0.1:50051', timeout: '10' });
    if (args.userId === undefined) throw new Error('--user-id is required');
  } catch (e) {
    console.error(`${e.message}\nusage: node client.js --target HOST:PORT --user-id ID [--timeout SECONDS]`);
    return 2;
  }
  const clients = connect(args.target);
  try {
    const session = await createSession(clients, args.userId, Number(args.timeout) * 1000);
    for (const line of describeSession(session)) console.log(line);
    return 0;
  } catch (err) {
    if (err.code === undefined) throw err;
    for (const line of describeError(decodeError(err))) console.log(line);
    return 1;
  } finally {
    clients.close();
  }
}

module.exports = {
  SESSION_SERVICE,
  RESPONSE_FIELDS,
  connect,
  createSession,
  createSessions,
  createSessionBatch,
  healthCheck,
  decodeError,
  decodeStatus,
  durationSeconds,
  parseGoTime,
  decodeJwtPart,
  describeSession,
  describeError,
  parseArgs,
  grpc,
};

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
