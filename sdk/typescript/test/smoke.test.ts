// Smoke test of @opennvr/sdk against a LIVE, freshly started OpenNVR server over grpc-web (HTTP/1.1).
//
// Environment (all required; the test fails, never skips, without them):
//   OPENNVR_SMOKE_URL          base URL of the server, e.g. http://127.0.0.1:7450
//   OPENNVR_SMOKE_SETUP_TOKEN  the server's one-time setup token (<data dir>/setup-token)
//   OPENNVR_SMOKE_USER         username of the first administrator to create
//   OPENNVR_SMOKE_PASSWORD     its password (the server's policy wants at least 12 characters)
//   OPENNVR_SMOKE_MFA_FILE     where to write the administrator's TOTP secret and recovery codes (JSON),
//                              for the Python smoke test that runs next
//
// scripts/sdk-smoke starts such a server and runs this with `npm test`.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { describe, it } from "node:test";

import * as sdk from "../src/index.js";
import { Code, ConnectError, createClient, createTransport, AuthService, PUBLIC_METHODS } from "../src/index.js";
import { getOption } from "@bufbuild/protobuf";
import type { DescService } from "@bufbuild/protobuf";
import { createClient as createServiceClient } from "@connectrpc/connect";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: the smoke test needs a live server (run scripts/sdk-smoke)`);
  }
  return value;
}

/** RFC 4648 base32 (no padding), as TOTP secrets are written. */
function base32Decode(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of text.replace(/=+$/, "").toUpperCase()) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits): what an authenticator app shows now. */
function totp(secretBase32: string, now = Date.now()): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 1000 / 30)));
  const mac = createHmac("sha1", base32Decode(secretBase32)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, "0");
}

async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("the call succeeded but should have failed");
}

function isService(value: unknown): value is DescService {
  return typeof value === "object" && value !== null && "kind" in value && value.kind === "service";
}

describe("OpenNVR TypeScript SDK smoke (grpc-web)", () => {
  it("knows the public RPCs from the policy option of every RPC", () => {
    const scanned: string[] = [];
    const services = Object.values(sdk as Record<string, unknown>).filter(isService);
    assert.equal(services.length, 10);
    for (const service of services) {
      for (const method of service.methods) {
        const rule = getOption(method, sdk.policy);
        assert.notEqual(rule.stepUp, sdk.Policy_StepUp.UNSPECIFIED, `${service.name}.${method.name} has no policy`);
        if (rule.access.case === "public") {
          scanned.push(`/${service.typeName}/${method.name}`);
        }
      }
    }
    assert.deepEqual([...PUBLIC_METHODS].sort(), scanned.sort());
    assert.ok(PUBLIC_METHODS.has("/opennvr.v1.AuthService/Login"));
    assert.ok(!PUBLIC_METHODS.has("/opennvr.v1.AuthService/WhoAmI"));
  });

  let accessToken = "";
  // Recovery codes of the administrator: each login below spends one (a TOTP code works once per
  // 30 s, and these logins come faster than that).
  let recoveryCodes: string[] = [];

  it("has its environment", () => {
    for (const name of [
      "OPENNVR_SMOKE_URL",
      "OPENNVR_SMOKE_SETUP_TOKEN",
      "OPENNVR_SMOKE_USER",
      "OPENNVR_SMOKE_PASSWORD",
      "OPENNVR_SMOKE_MFA_FILE",
    ]) {
      env(name);
    }
  });

  it("tells a fresh server from a set-up one before anyone signs in", async () => {
    const options = await createClient(env("OPENNVR_SMOKE_URL")).auth.getSignInOptions({});
    assert.equal(options.setupRequired, true, "a fresh server needs its first administrator");
  });

  it("names the invalid field of a refused request", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const err = await rpcError(client.bootstrap("nvr_setup_x", "smoke-admin", "short"));
    const facts = sdk.errorFacts(err);
    assert.equal(facts.code, Code.InvalidArgument, `expected InvalidArgument, got ${Code[facts.code]}`);
    assert.deepEqual(
      facts.fieldViolations.map((v) => v.field),
      ["password"],
      `the violation names the field: ${JSON.stringify(facts)}`,
    );
    assert.ok(!facts.message.startsWith("["), `the message comes without the code prefix: ${facts.message}`);
  });

  it("bootstraps the first administrator", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const tokens = await client.bootstrap(
      env("OPENNVR_SMOKE_SETUP_TOKEN").trim(),
      env("OPENNVR_SMOKE_USER"),
      env("OPENNVR_SMOKE_PASSWORD"),
      "Smoke Admin",
    );
    assert.ok(tokens.accessToken.length > 0, "Bootstrap returned an empty access token");
    assert.equal(tokens.user?.username, env("OPENNVR_SMOKE_USER").toLowerCase());
    // Administrators must have a second factor: the first session may only enrol one.
    assert.equal(tokens.mfaEnrolmentRequired, true, "a new administrator must enrol a second factor");
    const denied = await rpcError(client.users.listUsers({}));
    assert.equal(denied.code, Code.PermissionDenied, `expected PermissionDenied, got ${Code[denied.code]}`);
    const started = await client.auth.startTotpEnrollment({});
    assert.ok(started.otpauthUri.startsWith("otpauth://totp/"), started.otpauthUri);
    const finished = await client.auth.finishTotpEnrollment({
      enrollmentToken: started.enrollmentToken,
      code: totp(started.secret),
      name: "smoke phone",
    });
    assert.equal(finished.recoveryCodes.length, 10, "a first factor comes with ten recovery codes");
    recoveryCodes = finished.recoveryCodes;
    // The tests below spend the first three codes; the Python smoke test gets the other seven.
    writeFileSync(
      env("OPENNVR_SMOKE_MFA_FILE"),
      JSON.stringify({ totpSecret: started.secret, recoveryCodes: finished.recoveryCodes.slice(3) }),
      { mode: 0o600 },
    );
    const full = await client.refresh();
    assert.equal(full.mfaEnrolmentRequired, false, "after enrolment the session is a full one");
    assert.equal((await client.auth.getSignInOptions({})).setupRequired, false, "a set-up server needs no setup");
    assert.ok((await client.users.listUsers({})).users.length >= 1);
  });

  it("logs in with the password and a second factor", async () => {
    // The raw generated client, as a caller without the helper would use it.
    const auth = createServiceClient(AuthService, createTransport(env("OPENNVR_SMOKE_URL")));
    const res = await auth.login({ username: env("OPENNVR_SMOKE_USER"), password: env("OPENNVR_SMOKE_PASSWORD") });
    assert.equal(res.result.case, "mfaRequired", `expected an MFA challenge, got ${res.result.case}`);
    if (res.result.case !== "mfaRequired") return;
    const wrong = await rpcError(
      auth.finishMfa({ ticket: res.result.value.ticket, factor: { method: { case: "recoveryCode", value: "0000-0000-0000-0000" } } }),
    );
    assert.equal(wrong.code, Code.Unauthenticated, `a wrong factor: expected Unauthenticated, got ${Code[wrong.code]}`);
    const done = await auth.finishMfa({
      ticket: res.result.value.ticket,
      factor: { method: { case: "recoveryCode", value: recoveryCodes[0] } },
    });
    assert.ok(done.tokens?.accessToken, "FinishMfa returned an empty access token");
    assert.ok(done.tokens?.refreshToken, "FinishMfa returned an empty refresh token");
    accessToken = done.tokens?.accessToken ?? "";
  });

  it("lists users with the bearer token", async () => {
    assert.ok(accessToken, "no access token from the login test");
    const client = createClient(env("OPENNVR_SMOKE_URL"), { credential: accessToken });
    const res = await client.users.listUsers({});
    const names = res.users.map((u) => u.username);
    assert.ok(
      names.includes(env("OPENNVR_SMOKE_USER").toLowerCase()),
      `the administrator is not in ListUsers: ${JSON.stringify(names)}`,
    );
  });

  it("keeps tokens across calls with OpenNvrClient.login", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const result = await client.login(env("OPENNVR_SMOKE_USER"), env("OPENNVR_SMOKE_PASSWORD"));
    assert.equal(result.case, "mfaRequired");
    if (result.case !== "mfaRequired") return;
    await client.finishMfa(result.value.ticket, { case: "recoveryCode", value: recoveryCodes[1] });
    const me = await client.auth.whoAmI({});
    assert.equal(me.user?.username, env("OPENNVR_SMOKE_USER").toLowerCase());
    assert.ok(me.sessionId.length > 0, "WhoAmI returned no session id");
  });

  it("refreshes an access token that is about to expire", async () => {
    // A margin longer than any token lifetime makes every authenticated call refresh first.
    const client = createClient(env("OPENNVR_SMOKE_URL"), { refreshMarginMs: 365 * 24 * 3600 * 1000 });
    const result = await client.login(env("OPENNVR_SMOKE_USER"), env("OPENNVR_SMOKE_PASSWORD"));
    assert.equal(result.case, "mfaRequired");
    if (result.case !== "mfaRequired") return;
    await client.finishMfa(result.value.ticket, { case: "recoveryCode", value: recoveryCodes[2] });
    const first = client.tokens;
    const me = await client.auth.whoAmI({});
    assert.notEqual(client.tokens?.refreshToken, first?.refreshToken, "the refresh token did not rotate");
    assert.equal(me.sessionId, first?.sessionId, "the refreshed tokens belong to another session");
  });

  it("refuses a call without a credential", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const err = await rpcError(client.users.listUsers({}));
    assert.equal(err.code, Code.Unauthenticated, `expected Unauthenticated, got ${Code[err.code]}: ${err.message}`);
  });

  it("refuses a wrong password with Unauthenticated", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const err = await rpcError(client.login(env("OPENNVR_SMOKE_USER"), `${env("OPENNVR_SMOKE_PASSWORD")}-wrong`));
    assert.equal(err.code, Code.Unauthenticated, `expected Unauthenticated, got ${Code[err.code]}: ${err.message}`);
    assert.equal(client.credential, undefined, "a failed login must not leave a credential behind");
    assert.equal(sdk.errorFacts(err).reason, "ERROR_REASON_INVALID_CREDENTIALS");
    assert.equal(sdk.isStepUpRequired(err), false);
  });
});
