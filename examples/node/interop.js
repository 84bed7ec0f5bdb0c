#!/usr/bin/env node
// Interop checks for CI: drives a kgen-gateway started with --sandbox through @grpc/grpc-js.
//
//   node interop.js --target 127.0.0.1:50051 [--user-id interop-node-<random>]
//
// Prints one line per case (`[node] PASS <case>` or `[node] FAIL <case>: <why>`) and a summary
// `[node] N passed, N failed`; exits 1 when any case failed. The sandbox facts checked here are in docs/sandbox.md
// and src/sandbox/mod.rs.
'use strict';

const crypto = require('node:crypto');
const client = require('./client.js');

const { grpc } = client;
const LANG = 'node';
const DOMAIN = 'kgen-gateway';
// What the embedded sandbox (always client id `sandbox-client`) calls the game: `SANDBOX_` + the client id upper-cased.
const DEFAULT_CLIENT_NAME = 'SANDBOX_SANDBOX_CLIENT';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const WALLET_RE = /^0x[0-9a-f]{40}$/;
const CLIENT_ID_RE = /^[0-9]{8}$/;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const GO_TIME_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$/;
// Fields the sandbox always leaves empty.
const EMPTY_FIELDS = [
  'name', 'username', 'email', 'device_id', 'phonenumber', 'date_joined', 'playertag', 'location',
  'location_name', 'device_model', 'screen_height', 'screen_width', 'os_name', 'os_version', 'browser_name',
  'indigg_wallet_address', 'linked_phone',
];

class CheckFailed extends Error {}

function expect(condition, what) {
  if (!condition) throw new CheckFailed(what);
}

function expectEq(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new CheckFailed(`${what}: got ${a}, want ${e}`);
}

/** An int64 that proto-loader gave as a decimal string (longs: String), or an int32 number, as a BigInt. */
function int(value) {
  expect(typeof value === 'string' || typeof value === 'number', `not an integer: ${JSON.stringify(value)}`);
  return BigInt(value);
}

function checkToken(token, namespaced, name) {
  const parts = token.split('.');
  expectEq(parts.length, 3, `${name} parts`);
  for (const part of parts) expect(B64URL_RE.test(part), `${name}: a part is not unpadded base64url`);
  let header;
  let payload;
  try {
    header = client.decodeJwtPart(parts[0]);
    payload = client.decodeJwtPart(parts[1]);
  } catch (e) {
    throw new CheckFailed(`${name}: header/payload is not base64url JSON (${e.message})`);
  }
  expect(header && typeof header.alg === 'string', `${name}: header has no alg`);
  expectEq(payload.sub, namespaced, `${name} payload sub`);
}

/** Checks every field against the sandbox facts; returns the names of the fields checked. */
function checkSession(s, userId, clientName, newUser) {
  const checked = new Set();
  const field = (name) => {
    checked.add(name);
    return s[name];
  };

  expect(UUID_RE.test(field('session_id')), `session_id is not a UUID: ${JSON.stringify(s.session_id)}`);
  expectEq(field('user_id'), userId, 'user_id');
  for (const name of EMPTY_FIELDS) expectEq(field(name), '', name);
  const level = int(field('level'));
  expect(level >= 0n && level <= 49n, `level out of 0..=49: ${level}`);
  const rank = int(field('rank'));
  expect(rank >= 0n && rank <= 2550n && rank % 10n === 0n, `rank not a multiple of 10 in 0..=2550: ${rank}`);
  checked.add('indigg_id');
  expect(s._indigg_id === undefined && s.indigg_id === undefined, `indigg_id is set: ${JSON.stringify(s.indigg_id)}`);
  const tpcid = field('third_party_client_id');
  expect(CLIENT_ID_RE.test(tpcid), `third_party_client_id is not 8 digits: ${JSON.stringify(tpcid)}`);
  expectEq(field('third_party_client_name'), clientName, 'third_party_client_name');
  const namespaced = field('namespaced_third_party_user_id');
  expectEq(namespaced, `${tpcid}#${userId}`, 'namespaced_third_party_user_id');
  expect(WALLET_RE.test(field('wallet_address')), `wallet_address: ${JSON.stringify(s.wallet_address)}`);
  expectEq(field('is_new_user'), newUser, 'is_new_user');
  checkToken(field('access_token'), namespaced, 'access_token');
  checkToken(field('refresh_token'), namespaced, 'refresh_token');
  const start = field('session_start_time');
  expect(GO_TIME_RE.test(start), `session_start_time not in Go's format: ${JSON.stringify(start)}`);
  const parsed = client.parseGoTime(start);
  const now = BigInt(Math.floor(Date.now() / 1000));
  expect(parsed.seconds - now < 300n && now - parsed.seconds < 300n, `session_start_time is not now: ${start}`);
  const ts = field('session_started_at');
  expect(ts !== null && ts !== undefined, 'session_started_at is unset');
  expectEq(
    { seconds: String(int(ts.seconds)), nanos: ts.nanos },
    { seconds: String(parsed.seconds), nanos: parsed.nanos },
    `session_started_at vs session_start_time ${JSON.stringify(start)}`,
  );
  return checked;
}

/** Awaits `call`, which must fail with `code`; returns its decoded details. */
async function expectStatus(call, code) {
  let err;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  expect(err !== undefined, `the call succeeded, want ${grpc.status[code]}`);
  expect(err.code !== undefined, `not a gRPC error: ${err}`);
  const d = client.decodeError(err);
  expect(d.code === code, `status: got ${d.codeName} (${d.message}), want ${grpc.status[code]}`);
  return d;
}

function expectErrorInfo(d, reason) {
  expect(d.hasStatusDetails, 'no grpc-status-details-bin trailer');
  expect(d.errorInfo, 'no ErrorInfo in the details');
  expectEq(d.errorInfo.reason, reason, 'ErrorInfo.reason');
  expectEq(d.errorInfo.domain, DOMAIN, 'ErrorInfo.domain');
}

/**
 * Checks one batch answer against what CreateSession answers for `userId` (see batchUserIds); returns the outcome's
 * name.
 */
function checkBatchAnswer(answer, userId, clientName) {
  expectEq(answer.user_id, userId, 'answer user_id');
  if (userId.trim() === '') {
    expectEq(answer.result, 'error', `outcome for ${JSON.stringify(userId)}`);
    const d = client.decodeStatus(answer.error);
    expectEq(d.code, grpc.status.INVALID_ARGUMENT, `code for ${JSON.stringify(userId)}`);
    expectErrorInfo(d, 'INVALID_USER_ID');
    expect(d.badRequest, "no BadRequest in the item's details");
    expectEq(d.badRequest.field_violations.map((v) => v.field), ['user_id'], 'BadRequest field violations');
    return 'INVALID_ARGUMENT';
  }
  if (userId === 'fault:status:404') {
    expectEq(answer.result, 'error', `outcome for ${userId}`);
    const d = client.decodeStatus(answer.error);
    expectEq(d.code, grpc.status.NOT_FOUND, `code for ${userId}`);
    expectErrorInfo(d, 'UPSTREAM_NOT_FOUND');
    expectEq(d.errorInfo.metadata.upstream_status, '404', 'ErrorInfo.metadata upstream_status');
    return 'NOT_FOUND';
  }
  expectEq(answer.result, 'session', `outcome for ${userId}`);
  checkSession(answer.session, userId, clientName, true);
  return 'session';
}

/** Five user ids: three new gamers, an invalid (empty) one, and an injected 404. */
function batchUserIds(prefix) {
  return [`${prefix}-0`, '', `${prefix}-1`, 'fault:status:404', `${prefix}-2`];
}

async function main() {
  let args;
  try {
    args = client.parseArgs(process.argv.slice(2), {
      userId: `interop-node-${crypto.randomBytes(6).toString('hex')}`,
      expectClientName: process.env.INTEROP_EXPECT_CLIENT_NAME || DEFAULT_CLIENT_NAME,
    });
    if (!args.target) throw new Error('--target is required');
  } catch (e) {
    console.error(`${e.message}\nusage: node interop.js --target HOST:PORT [--user-id ID] [--expect-client-name NAME]`);
    return 2;
  }
  const { userId } = args;
  const results = { passed: 0, failed: 0 };

  async function runCase(name, fn) {
    const started = process.hrtime.bigint();
    try {
      const note = await fn();
      results.passed += 1;
      const ms = Number((process.hrtime.bigint() - started) / 1_000_000n);
      console.log(`[${LANG}] PASS ${name} (${ms} ms)${note ? `: ${note}` : ''}`);
    } catch (e) {
      results.failed += 1;
      const why = e instanceof CheckFailed ? e.message : `unexpected ${e && e.name}: ${e && e.message}`;
      console.log(`[${LANG}] FAIL ${name}: ${why}`);
    }
  }

  const clients = client.connect(args.target);
  const first = {};
  const invalid = (user) => async () => {
    const d = await expectStatus(() => client.createSession(clients, user, 10000), grpc.status.INVALID_ARGUMENT);
    expectErrorInfo(d, 'INVALID_USER_ID');
    expect(d.badRequest, 'no BadRequest in the details');
    expectEq(d.badRequest.field_violations.map((v) => v.field), ['user_id'], 'BadRequest field violations');
    return `BadRequest field=user_id (${d.badRequest.field_violations[0].description})`;
  };
  const health = (service) => async () => {
    expectEq(await client.healthCheck(clients, service), 'SERVING', `health of ${JSON.stringify(service)}`);
    return 'SERVING';
  };
  try {
    await runCase('success: first call, every field (is_new_user true)', async () => {
      const s = await client.createSession(clients, userId, 10000);
      const checked = checkSession(s, userId, args.expectClientName, true);
      const unchecked = client.RESPONSE_FIELDS.filter((f) => !checked.has(f));
      expectEq(unchecked, [], 'response fields without a check');
      first.session = s;
      return `user_id=${userId}, all ${client.RESPONSE_FIELDS.length} fields checked`;
    });
    await runCase('success: second call for the same user (is_new_user false)', async () => {
      expect(first.session, 'the first call failed');
      const s = await client.createSession(clients, userId, 10000);
      checkSession(s, userId, args.expectClientName, false);
      expectEq(s.wallet_address, first.session.wallet_address, 'wallet_address on the second call');
      expect(s.session_id !== first.session.session_id, 'session_id is not fresh on the second call');
      return 'is_new_user false, same wallet_address, fresh session_id';
    });
    await runCase("invalid user_id '' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid(''));
    await runCase("invalid user_id '   ' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid('   '));
    await runCase('fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo', async () => {
      const d = await expectStatus(
        () => client.createSession(clients, 'fault:status:429', 10000),
        grpc.status.RESOURCE_EXHAUSTED,
      );
      expectErrorInfo(d, 'UPSTREAM_RATE_LIMITED');
      expectEq(d.errorInfo.metadata.upstream_status, '429', 'ErrorInfo.metadata upstream_status');
      const attempts = d.errorInfo.metadata.attempts ?? '';
      expect(/^[1-9][0-9]*$/.test(attempts), `ErrorInfo.metadata attempts: ${JSON.stringify(attempts)}`);
      expect(d.retryInfo && d.retryInfo.retry_delay, 'no RetryInfo in the details');
      const delay = d.retryInfo.retry_delay;
      expectEq([String(delay.seconds), delay.nanos], ['1', 0], 'RetryInfo.retry_delay [seconds, nanos]');
      return `RetryInfo 1s, attempts=${attempts}`;
    });
    await runCase('fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED', async () => {
      const started = Date.now();
      const d = await expectStatus(
        () => client.createSession(clients, 'fault:delay:3000', 300),
        grpc.status.DEADLINE_EXCEEDED,
      );
      const elapsed = Date.now() - started;
      expect(elapsed < 2000, `DEADLINE_EXCEEDED only after ${elapsed} ms (deadline 300 ms)`);
      return `after ${elapsed} ms, ErrorInfo reason: ${d.errorInfo ? d.errorInfo.reason : 'none (client-side deadline)'}`;
    });
    await runCase("batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives", async () => {
      const userIds = batchUserIds(`${userId}-stream`);
      const answers = await client.createSessions(clients, userIds, 10000);
      expectEq(answers.length, userIds.length, 'answers');
      const byUser = new Map(answers.map((a) => [a.user_id, a]));
      expectEq([...byUser.keys()].sort(), [...userIds].sort(), 'one answer per user_id');
      const outcomes = userIds.map((u) => checkBatchAnswer(byUser.get(u), u, args.expectClientName));
      return `${answers.length} answers: ${outcomes.join(', ')}`;
    });
    await runCase("batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order", async () => {
      const userIds = batchUserIds(`${userId}-batch`);
      const results = await client.createSessionBatch(clients, userIds, 10000);
      expectEq(results.map((r) => r.user_id), userIds, 'results in request order');
      const outcomes = results.map((r, i) => checkBatchAnswer(r, userIds[i], args.expectClientName));
      return `${results.length} results in order: ${outcomes.join(', ')}`;
    });
    await runCase('batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest', async () => {
      const userIds = Array.from({ length: 101 }, (_, i) => `${userId}-big-${i}`);
      const d = await expectStatus(
        () => client.createSessionBatch(clients, userIds, 10000),
        grpc.status.INVALID_ARGUMENT,
      );
      expectErrorInfo(d, 'INVALID_BATCH_SIZE');
      expect(d.badRequest, 'no BadRequest in the details');
      expectEq(d.badRequest.field_violations.map((v) => v.field), ['user_ids'], 'BadRequest field violations');
      return `BadRequest field=user_ids (${d.badRequest.field_violations[0].description})`;
    });
    await runCase("health check '' -> SERVING", health(''));
    await runCase(`health check '${client.SESSION_SERVICE}' -> SERVING`, health(client.SESSION_SERVICE));
  } finally {
    clients.close();
  }
  console.log(`[${LANG}] ${results.passed} passed, ${results.failed} failed`);
  return results.failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
