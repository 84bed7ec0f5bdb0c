#!/usr/bin/env node
// Interop checks for CI: drives a kgen-gateway started with --sandbox through connect-es (@connectrpc/connect-node)
// over the Connect protocol, which the gateway serves on its gRPC port (docs/connect.md).
//
//   node interop.js --target 127.0.0.1:50051 [--user-id interop-connect-es-<random>]
//
// Every case runs on four transports made by createConnectTransport: HTTP/1.1 and HTTP/2 (h2c, prior knowledge),
// each with JSON (application/json) and binary (application/proto) messages. Prints one line per case
// (`[connect-es] PASS <case>` or `[connect-es] FAIL <case>: <why>`) and a summary `[connect-es] N passed, N failed`;
// exits 1 when any case failed, 2 for bad usage. The stubs are generated into gen/ by generate.sh (run-interop.sh
// runs it). The sandbox facts checked here are in docs/sandbox.md and src/sandbox/mod.rs.

import crypto from 'node:crypto';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { compressionGzip, createConnectTransport } from '@connectrpc/connect-node';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import {
  BadRequestSchema, ErrorInfoSchema, RESPONSE_FIELDS, RetryInfoSchema, SessionService, connect, parseArgs, show,
} from './client.js';

const LANG = 'connect-es';
const USAGE = 'usage: node interop.js --target HOST:PORT [--user-id ID] [--expect-client-name NAME]';
const DOMAIN = 'kgen-gateway';
// What the embedded sandbox (always client id `sandbox-client`) calls the game: `SANDBOX_` + the client id upper-cased.
const DEFAULT_CLIENT_NAME = 'SANDBOX_SANDBOX_CLIENT';
const TIMEOUT_MS = 10000;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const WALLET_RE = /^0x[0-9a-f]{40}$/;
const CLIENT_ID_RE = /^[0-9]{8}$/;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const GO_TIME_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$/;
// Fields the sandbox always leaves empty (the stubs' lowerCamelCase names).
const EMPTY_FIELDS = [
  'name', 'username', 'email', 'deviceId', 'phonenumber', 'dateJoined', 'playertag', 'location', 'locationName',
  'deviceModel', 'screenHeight', 'screenWidth', 'osName', 'osVersion', 'browserName', 'indiggWalletAddress',
  'linkedPhone',
];

class CheckFailed extends Error {}

function expect(condition, what) {
  if (!condition) throw new CheckFailed(what);
}

function expectEq(actual, expected, what) {
  const a = show(actual);
  const e = show(expected);
  if (a !== e) throw new CheckFailed(`${what}: got ${a}, want ${e}`);
}

/** Decodes one unpadded base64url JSON part of a JWT. */
function decodeJwtPart(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

const GO_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2}) [A-Za-z0-9+-]+$/;

/** Go's time.Time String() format (`2024-08-20 08:32:13.025599965 +0000 UTC`) as { seconds: BigInt, nanos }. */
function parseGoTime(text) {
  const m = GO_TIME.exec(text);
  if (!m) throw new CheckFailed(`not Go's time format: ${JSON.stringify(text)}`);
  const [, y, mo, d, h, mi, s, fraction = '', sign, oh, om] = m;
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s) / 1000;
  const offset = (+oh * 3600 + +om * 60) * (sign === '+' ? 1 : -1);
  return { seconds: BigInt(wall - offset), nanos: Number(fraction.padEnd(9, '0')) };
}

function checkToken(token, namespaced, name) {
  const parts = token.split('.');
  expectEq(parts.length, 3, `${name} parts`);
  for (const part of parts) expect(B64URL_RE.test(part), `${name}: a part is not unpadded base64url`);
  let header;
  let payload;
  try {
    header = decodeJwtPart(parts[0]);
    payload = decodeJwtPart(parts[1]);
  } catch (e) {
    throw new CheckFailed(`${name}: header/payload is not base64url JSON (${e.message})`);
  }
  expect(header && typeof header.alg === 'string', `${name}: header has no alg`);
  expectEq(payload.sub, namespaced, `${name} payload sub`);
}

/** Checks every field of a CreateSessionResponse against the sandbox facts; returns the names of the fields checked. */
function checkSession(s, userId, clientName, newUser) {
  const checked = new Set();
  const field = (name) => {
    checked.add(name);
    return s[name];
  };

  expectEq(s.$typeName, 'kgen.session.v1.CreateSessionResponse', 'message type');
  expect(UUID_RE.test(field('sessionId')), `sessionId is not a UUID: ${show(s.sessionId)}`);
  expectEq(field('userId'), userId, 'userId');
  for (const name of EMPTY_FIELDS) expectEq(field(name), '', name);
  const level = field('level');
  expect(typeof level === 'bigint', `level is not an int64 (bigint): ${show(level)}`);
  expect(level >= 0n && level <= 49n, `level out of 0..=49: ${level}`);
  const rank = field('rank');
  expect(typeof rank === 'bigint', `rank is not an int64 (bigint): ${show(rank)}`);
  expect(rank >= 0n && rank <= 2550n && rank % 10n === 0n, `rank not a multiple of 10 in 0..=2550: ${rank}`);
  // proto3 `optional`: undefined when unset (the sandbox never sets it).
  expect(field('indiggId') === undefined, `indiggId is set: ${show(s.indiggId)}`);
  const tpcid = field('thirdPartyClientId');
  expect(CLIENT_ID_RE.test(tpcid), `thirdPartyClientId is not 8 digits: ${show(tpcid)}`);
  expectEq(field('thirdPartyClientName'), clientName, 'thirdPartyClientName');
  const namespaced = field('namespacedThirdPartyUserId');
  expectEq(namespaced, `${tpcid}#${userId}`, 'namespacedThirdPartyUserId');
  expect(WALLET_RE.test(field('walletAddress')), `walletAddress: ${show(s.walletAddress)}`);
  expectEq(field('isNewUser'), newUser, 'isNewUser');
  checkToken(field('accessToken'), namespaced, 'accessToken');
  checkToken(field('refreshToken'), namespaced, 'refreshToken');
  const start = field('sessionStartTime');
  expect(GO_TIME_RE.test(start), `sessionStartTime not in Go's format: ${show(start)}`);
  const parsed = parseGoTime(start);
  const now = BigInt(Math.floor(Date.now() / 1000));
  expect(parsed.seconds - now < 300n && now - parsed.seconds < 300n, `sessionStartTime is not now: ${start}`);
  const ts = field('sessionStartedAt');
  expect(ts !== undefined, 'sessionStartedAt is unset');
  expectEq(ts.$typeName, 'google.protobuf.Timestamp', 'sessionStartedAt type');
  expectEq(
    { seconds: ts.seconds, nanos: ts.nanos },
    parsed,
    `sessionStartedAt vs sessionStartTime ${JSON.stringify(start)}`,
  );
  return checked;
}

/** Awaits `call`, which must fail with `code`; returns the ConnectError. */
async function expectCode(call, code) {
  let caught;
  try {
    await call();
  } catch (e) {
    caught = e;
  }
  expect(caught !== undefined, `the call succeeded, want ${Code[code]}`);
  const err = ConnectError.from(caught);
  expect(err.code === code, `code: got ${Code[err.code]} (${err.rawMessage}), want ${Code[code]}`);
  return err;
}

/** The one detail of `schema` in a ConnectError (findDetails) or a google.rpc.Status (anyUnpack of its Anys). */
function oneDetail(source, schema) {
  const found = source instanceof ConnectError
    ? source.findDetails(schema)
    : source.details.map((any) => anyUnpack(any, schema)).filter((m) => m !== undefined);
  expectEq(found.length, 1, `${schema.typeName} details`);
  return found[0];
}

function expectErrorInfo(source, reason) {
  const info = oneDetail(source, ErrorInfoSchema);
  expectEq(info.reason, reason, 'ErrorInfo.reason');
  expectEq(info.domain, DOMAIN, 'ErrorInfo.domain');
  return info;
}

function expectBadRequest(source, field) {
  const bad = oneDetail(source, BadRequestSchema);
  expectEq(bad.fieldViolations.map((v) => v.field), [field], 'BadRequest field violations');
  return bad.fieldViolations[0];
}

/**
 * The four transports, each with its own client (client.js's connect()): HTTP/1.1 and HTTP/2 (h2c), JSON and binary.
 * No compression: acceptCompression [] sends no accept-encoding (connect-node's default asks for gzip and br); the
 * gzip case asks for it itself.
 */
function makeTransports(target) {
  const transports = [];
  for (const httpVersion of ['1.1', '2']) {
    for (const binary of [false, true]) {
      transports.push({
        label: `h${httpVersion === '2' ? '2' : '1.1'}/${binary ? 'proto' : 'json'}`,
        http2: httpVersion === '2',
        ...connect(target, { httpVersion, binary, acceptCompression: [] }),
      });
    }
  }
  return transports;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), {
      target: undefined,
      userId: `interop-connect-es-${crypto.randomBytes(6).toString('hex')}`,
      expectClientName: process.env.INTEROP_EXPECT_CLIENT_NAME || DEFAULT_CLIENT_NAME,
    });
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    return 2;
  }
  const { userId, expectClientName } = args;
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
      let why;
      if (e instanceof CheckFailed) why = e.message;
      else if (e instanceof ConnectError) why = `unexpected ConnectError ${Code[e.code]}: ${e.rawMessage}`;
      else why = `unexpected ${e && e.name}: ${e && e.message}`;
      console.log(`[${LANG}] FAIL ${name}: ${why}`);
    }
  }

  const transports = makeTransports(args.target);
  try {
    for (const { label, http2, options, client } of transports) {
      // A user id of its own per transport, so is_new_user is true on each transport's first call.
      const user = `${userId}-${label.replace('/', '-')}`;
      const first = {};

      await runCase(`${label} success: first call, every field (isNewUser true)`, async () => {
        const s = await client.createSession({ userId: user }, { timeoutMs: TIMEOUT_MS });
        const checked = checkSession(s, user, expectClientName, true);
        expectEq(RESPONSE_FIELDS.filter((f) => !checked.has(f)), [], 'response fields without a check');
        first.session = s;
        return `userId=${user}, all ${RESPONSE_FIELDS.length} fields checked`;
      });

      await runCase(`${label} success: second call for the same user (isNewUser false)`, async () => {
        expect(first.session, 'the first call failed');
        const s = await client.createSession({ userId: user }, { timeoutMs: TIMEOUT_MS });
        checkSession(s, user, expectClientName, false);
        expectEq(s.walletAddress, first.session.walletAddress, 'walletAddress on the second call');
        expect(s.sessionId !== first.session.sessionId, 'sessionId is not fresh on the second call');
        return 'isNewUser false, same walletAddress, fresh sessionId';
      });

      await runCase(`${label} invalid userId '' -> InvalidArgument/INVALID_USER_ID + BadRequest`, async () => {
        const err = await expectCode(
          () => client.createSession({ userId: '' }, { timeoutMs: TIMEOUT_MS }),
          Code.InvalidArgument,
        );
        expectErrorInfo(err, 'INVALID_USER_ID');
        const violation = expectBadRequest(err, 'user_id');
        return `BadRequest field=user_id (${violation.description})`;
      });

      await runCase(`${label} fault:status:429 -> ResourceExhausted/UPSTREAM_RATE_LIMITED + RetryInfo 1s`, async () => {
        const err = await expectCode(
          () => client.createSession({ userId: 'fault:status:429' }, { timeoutMs: TIMEOUT_MS }),
          Code.ResourceExhausted,
        );
        const info = expectErrorInfo(err, 'UPSTREAM_RATE_LIMITED');
        expectEq(info.metadata.upstream_status, '429', 'ErrorInfo.metadata upstream_status');
        const attempts = info.metadata.attempts ?? '';
        expect(/^[1-9][0-9]*$/.test(attempts), `ErrorInfo.metadata attempts: ${JSON.stringify(attempts)}`);
        const retry = oneDetail(err, RetryInfoSchema);
        expect(retry.retryDelay !== undefined, 'RetryInfo without retryDelay');
        expectEq([retry.retryDelay.seconds, retry.retryDelay.nanos], [1n, 0], 'RetryInfo.retryDelay [seconds, nanos]');
        return `RetryInfo 1s, attempts=${attempts}`;
      });

      await runCase(`${label} fault:delay:3000 with timeoutMs 300 -> DeadlineExceeded`, async () => {
        const started = Date.now();
        const err = await expectCode(
          () => client.createSession({ userId: 'fault:delay:3000' }, { timeoutMs: 300 }),
          Code.DeadlineExceeded,
        );
        const elapsed = Date.now() - started;
        expect(elapsed < 2000, `DeadlineExceeded only after ${elapsed} ms (timeoutMs 300)`);
        const [info] = err.findDetails(ErrorInfoSchema);
        return `after ${elapsed} ms, ErrorInfo reason: ${info ? info.reason : 'none (the client\'s own timeout fired first)'}`;
      });

      await runCase(`${label} CreateSessionBatch of 2 -> 2 sessions in request order`, async () => {
        const userIds = [`${user}-batch-0`, `${user}-batch-1`];
        const res = await client.createSessionBatch({ userIds }, { timeoutMs: TIMEOUT_MS });
        expectEq(res.results.map((r) => r.userId), userIds, 'results in request order');
        res.results.forEach((r, i) => {
          expectEq(r.result.case, 'session', `outcome for ${userIds[i]}`);
          checkSession(r.result.value, userIds[i], expectClientName, true);
        });
        return `${res.results.length} sessions in order, every field checked`;
      });

      await runCase(`${label} CreateSessionBatch ['', id] -> item error InvalidArgument/INVALID_USER_ID, then a session`, async () => {
        const userIds = ['', `${user}-batch-2`];
        const res = await client.createSessionBatch({ userIds }, { timeoutMs: TIMEOUT_MS });
        expectEq(res.results.map((r) => r.userId), userIds, 'results in request order');
        expectEq(res.results[0].result.case, 'error', "outcome for ''");
        const status = res.results[0].result.value;
        expectEq(status.code, Code.InvalidArgument, "google.rpc.Status code for ''");
        expectErrorInfo(status, 'INVALID_USER_ID');
        expectBadRequest(status, 'user_id');
        expectEq(res.results[1].result.case, 'session', `outcome for ${userIds[1]}`);
        checkSession(res.results[1].result.value, userIds[1], expectClientName, true);
        return "'' answered by its google.rpc.Status (ErrorInfo, BadRequest unpacked from Any), then a session";
      });

      await runCase(`${label} response headers carry x-request-id (generated, echoed, and on an error)`, async () => {
        let generated;
        await client.createSession({ userId: user }, { timeoutMs: TIMEOUT_MS, onHeader: (h) => { generated = h; } });
        expect(generated, 'onHeader was not called');
        const id = generated.get('x-request-id');
        expect(id, 'no x-request-id in the response headers');
        const mine = `connect-es-${crypto.randomBytes(8).toString('hex')}`;
        let echoed;
        await client.createSession(
          { userId: user },
          { timeoutMs: TIMEOUT_MS, headers: { 'x-request-id': mine }, onHeader: (h) => { echoed = h; } },
        );
        expectEq(echoed && echoed.get('x-request-id'), mine, 'x-request-id sent by the caller, echoed');
        const err = await expectCode(
          () => client.createSession({ userId: '' }, { timeoutMs: TIMEOUT_MS, headers: { 'x-request-id': `${mine}-err` } }),
          Code.InvalidArgument,
        );
        expectEq(err.metadata.get('x-request-id'), `${mine}-err`, 'x-request-id of an error answer (ConnectError.metadata)');
        return `generated ${id}; ours echoed, on success and on an error`;
      });

      await runCase(`${label} gzip (sendCompression + acceptCompression gzip) -> success`, async () => {
        let sent;
        // The request's content-encoding, as the transport set it (after the interceptors ran).
        const seeRequest = (next) => async (req) => {
          const res = await next(req);
          sent = req.header.get('content-encoding');
          return res;
        };
        const gzip = createClient(SessionService, createConnectTransport({
          ...options,
          sendCompression: compressionGzip,
          acceptCompression: [compressionGzip],
          // Compress every request: with the default (1024 bytes) a CreateSessionRequest would go uncompressed.
          compressMinBytes: 0,
          interceptors: [seeRequest],
        }));
        let headers;
        const s = await gzip.createSession({ userId: user }, { timeoutMs: TIMEOUT_MS, onHeader: (h) => { headers = h; } });
        expectEq(sent, 'gzip', 'content-encoding of the CreateSession request');
        checkSession(s, user, expectClientName, false);
        const small = headers.get('content-encoding') ?? 'identity';
        // Three sessions: an answer of about 3 KiB (JSON) or 2.5 KiB (binary), worth compressing.
        const userIds = [`${user}-gzip-0`, `${user}-gzip-1`, `${user}-gzip-2`];
        sent = undefined;
        const res = await gzip.createSessionBatch({ userIds }, { timeoutMs: TIMEOUT_MS, onHeader: (h) => { headers = h; } });
        expectEq(sent, 'gzip', 'content-encoding of the CreateSessionBatch request');
        expectEq(res.results.map((r) => r.userId), userIds, 'results in request order');
        res.results.forEach((r, i) => {
          expectEq(r.result.case, 'session', `outcome for ${userIds[i]}`);
          checkSession(r.result.value, userIds[i], expectClientName, true);
        });
        const big = headers.get('content-encoding') ?? 'identity';
        return `requests gzip; answers' content-encoding: CreateSession ${small}, CreateSessionBatch of 3 ${big}`;
      });

      if (http2) {
        await runCase(`${label} CreateSessions (bidi streaming) -> Unimplemented`, async () => {
          async function* requests() {
            yield { userId: `${user}-stream` };
          }
          const err = await expectCode(async () => {
            for await (const answer of client.createSessions(requests(), { timeoutMs: TIMEOUT_MS })) {
              throw new CheckFailed(`an answer arrived: ${show(answer.userId)}`);
            }
          }, Code.Unimplemented);
          return `"${err.rawMessage}"`;
        });
      }
    }

  } finally {
    for (const { close } of transports) close();
  }
  console.log(`[${LANG}] ${results.passed} passed, ${results.failed} failed`);
  return results.failed ? 1 : 0;
}

process.exitCode = await main().catch((e) => {
  console.error(e);
  return 1;
});
