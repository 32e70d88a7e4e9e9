// Smoke test of @opennvr/sdk against a LIVE, freshly started OpenNVR server over grpc-web (HTTP/1.1).
//
// Environment (all required; the test fails, never skips, without them):
//   OPENNVR_SMOKE_URL          base URL of the server, e.g. http://127.0.0.1:7450
//   OPENNVR_SMOKE_SETUP_TOKEN  the server's one-time setup token (<data dir>/setup-token)
//   OPENNVR_SMOKE_USER         username of the first administrator to create
//   OPENNVR_SMOKE_PASSWORD     its password (the server's policy wants at least 12 characters)
//
// scripts/sdk-smoke starts such a server and runs this with `npm test`.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Code, ConnectError, createClient, createTransport, AuthService } from "../src/index.js";
import { createClient as createServiceClient } from "@connectrpc/connect";

function env(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: the smoke test needs a live server (run scripts/sdk-smoke)`);
  }
  return value;
}

async function rpcError(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("the call succeeded but should have failed");
}

describe("OpenNVR TypeScript SDK smoke (grpc-web)", () => {
  let accessToken = "";

  it("has its environment", () => {
    for (const name of ["OPENNVR_SMOKE_URL", "OPENNVR_SMOKE_SETUP_TOKEN", "OPENNVR_SMOKE_USER", "OPENNVR_SMOKE_PASSWORD"]) {
      env(name);
    }
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
  });

  it("logs in with the password and gets tokens", async () => {
    // The raw generated client, as a caller without the helper would use it.
    const auth = createServiceClient(AuthService, createTransport(env("OPENNVR_SMOKE_URL")));
    const res = await auth.login({ username: env("OPENNVR_SMOKE_USER"), password: env("OPENNVR_SMOKE_PASSWORD") });
    assert.equal(res.result.case, "tokens", `expected tokens, got ${res.result.case}`);
    if (res.result.case === "tokens") {
      assert.ok(res.result.value.accessToken.length > 0, "Login returned an empty access token");
      assert.ok(res.result.value.refreshToken.length > 0, "Login returned an empty refresh token");
      accessToken = res.result.value.accessToken;
    }
  });

  it("lists users with the bearer token", async () => {
    assert.ok(accessToken, "no access token from the login test");
    const client = createClient(env("OPENNVR_SMOKE_URL"), { credential: accessToken });
    const res = await client.auth.listUsers({});
    const names = res.users.map((u) => u.username);
    assert.ok(
      names.includes(env("OPENNVR_SMOKE_USER").toLowerCase()),
      `the administrator is not in ListUsers: ${JSON.stringify(names)}`,
    );
  });

  it("keeps tokens across calls with OpenNvrClient.login", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const result = await client.login(env("OPENNVR_SMOKE_USER"), env("OPENNVR_SMOKE_PASSWORD"));
    assert.equal(result.case, "tokens");
    const me = await client.auth.whoAmI({});
    assert.equal(me.user?.username, env("OPENNVR_SMOKE_USER").toLowerCase());
    assert.ok(me.sessionId.length > 0, "WhoAmI returned no session id");
  });

  it("refreshes an access token that is about to expire", async () => {
    // A margin longer than any token lifetime makes every authenticated call refresh first.
    const client = createClient(env("OPENNVR_SMOKE_URL"), { refreshMarginMs: 365 * 24 * 3600 * 1000 });
    const result = await client.login(env("OPENNVR_SMOKE_USER"), env("OPENNVR_SMOKE_PASSWORD"));
    assert.equal(result.case, "tokens");
    const first = client.tokens;
    const me = await client.auth.whoAmI({});
    assert.notEqual(client.tokens?.refreshToken, first?.refreshToken, "the refresh token did not rotate");
    assert.equal(me.sessionId, first?.sessionId, "the refreshed tokens belong to another session");
  });

  it("refuses a call without a credential", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const err = await rpcError(client.auth.listUsers({}));
    assert.equal(err.code, Code.Unauthenticated, `expected Unauthenticated, got ${Code[err.code]}: ${err.message}`);
  });

  it("refuses a wrong password with Unauthenticated", async () => {
    const client = createClient(env("OPENNVR_SMOKE_URL"));
    const err = await rpcError(client.login(env("OPENNVR_SMOKE_USER"), `${env("OPENNVR_SMOKE_PASSWORD")}-wrong`));
    assert.equal(err.code, Code.Unauthenticated, `expected Unauthenticated, got ${Code[err.code]}: ${err.message}`);
    assert.equal(client.credential, undefined, "a failed login must not leave a credential behind");
  });
});
