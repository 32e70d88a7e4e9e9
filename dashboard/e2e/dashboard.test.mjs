// Browser tests of the dashboard, in Debian's Chromium, against the real server binary, the MediaMTX
// API emulator, GStreamer cameras and the WHEP/HLS media fixture (e2e/stack.mjs). The tests run in
// order on one site, as an operator would meet it: first run, sign-in, passkeys, cameras, live view,
// events, step-up, a viewer's narrower view, a phone. Each saves a screenshot to docs/screenshots/.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient, Role } from "@opennvr/sdk";
import { authenticator, eventually, launchBrowser, newPage, screenshot, videosAdvance } from "./browser.mjs";
import { startStack } from "./stack.mjs";

const ADMIN = { username: "admin", password: "correct horse battery staple" };
const VIEWER = { username: "guard", password: "night shift at the dock" };

/** What the tests learn on the way and use later. */
const site = { totp: undefined, recoveryCodes: [], api: undefined, cameras: [], lastFactorAt: 0 };
let stack;
let browser;
let admin; // the administrator's page, signed in from the second test on

before(async () => {
  stack = await startStack({ cameras: 2 });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** An API client signed in as the administrator with a recovery code (to arrange fixtures). */
async function adminApi() {
  if (site.api) return site.api;
  const api = createClient(stack.apiUrl);
  const result = await api.login(ADMIN.username, ADMIN.password);
  assert.equal(result.case, "mfaRequired");
  await api.finishMfa(result.value.ticket, { case: "recoveryCode", value: site.recoveryCodes.pop() });
  site.api = api;
  return api;
}

async function signIn(page, { username, password }, totp) {
  await page.goto(stack.url);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  if (totp) {
    await page.getByLabel("Authentication code").fill(await totp.next());
    await page.getByRole("button", { name: "Verify" }).click();
    site.lastFactorAt = Date.now();
  }
  await page.getByRole("banner").waitFor();
}

describe("the dashboard", () => {
  it("plays H.264 in this Chromium over WebRTC and MSE", async () => {
    /* global RTCRtpReceiver, MediaSource -- evaluated in the page */
    const page = await newPage(browser);
    await page.goto(stack.url);
    const support = await page.evaluate(() => ({
      webrtc: RTCRtpReceiver.getCapabilities("video")?.codecs.some((c) => c.mimeType === "video/H264") ?? false,
      mse: MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E"'),
    }));
    assert.deepEqual(support, { webrtc: true, mse: true });
    await page.context().close();
  });

  it("creates the first administrator and enrols an authenticator on first run", async () => {
    const page = await newPage(browser);
    await page.goto(`${stack.origin}/`);
    await page.getByLabel("Setup token").waitFor();
    await screenshot(page, "01-setup");
    await page.getByLabel("Setup token").fill(stack.setupToken());
    await page.getByLabel("Username").fill(ADMIN.username);
    await page.getByLabel("Display name").fill("Site Admin");
    await page.getByLabel("Password", { exact: true }).fill(ADMIN.password);
    await page.getByLabel("Confirm password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Create administrator" }).click();

    const secret = (await page.getByTestId("totp-secret").textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    await screenshot(page, "02-enrol-totp");
    // A wrong code asks again, for the same secret.
    await page.getByLabel("Authentication code").fill("000000");
    await page.getByRole("button", { name: "Confirm" }).click();
    await page.getByRole("alert").waitFor();
    assert.equal((await page.getByTestId("totp-secret").textContent()).trim(), secret);
    site.totp = authenticator(secret);
    await page.getByLabel("Authentication code").fill(await site.totp.next());
    await page.getByRole("button", { name: "Confirm" }).click();

    const codes = page.getByRole("list", { name: "Recovery codes" }).getByRole("listitem");
    await codes.first().waitFor();
    site.recoveryCodes = (await codes.allTextContents()).map((c) => c.trim());
    assert.equal(site.recoveryCodes.length, 10);
    await screenshot(page, "03-recovery-codes");
    assert.equal(await page.getByRole("button", { name: "Continue" }).isDisabled(), true, "continue only once the codes are saved");
    await page.getByLabel("I have saved my recovery codes").check();
    await page.getByRole("button", { name: "Continue" }).click();
    await page.getByText("No cameras yet").waitFor();
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it("signs in with a password and an authenticator code", async () => {
    admin = await newPage(browser);
    await admin.goto(stack.url);
    await admin.getByLabel("Username").waitFor();
    await screenshot(admin, "04-sign-in");
    await admin.getByLabel("Username").fill(ADMIN.username);
    await admin.getByLabel("Password").fill("not the password at all");
    await admin.getByRole("button", { name: "Sign in", exact: true }).click();
    await admin.getByRole("alert").waitFor();
    assert.match(await admin.getByRole("alert").textContent(), /invalid|incorrect|wrong/i);
    await signIn(admin, ADMIN, site.totp);
    assert.equal(await admin.getByText("Site Admin").isVisible(), true);
  });

  it("registers a passkey and signs in with it alone", async () => {
    const page = await newPage(browser);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
    });
    await signIn(page, ADMIN, site.totp);
    await page.getByRole("link", { name: "Account" }).click();
    await page.getByLabel("Passkey name").fill("Test authenticator");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.getByRole("list", { name: "Second factors" }).getByText("Test authenticator").waitFor();
    await screenshot(page, "05-account-passkey");

    await page.getByRole("button", { name: "Sign out" }).first().click();
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await page.getByRole("banner").waitFor();
    assert.equal(await page.getByText("Site Admin").isVisible(), true);
    await page.context().close();
  });

  it("adds a camera after a failing and then a passing connection test", async () => {
    await admin.getByRole("link", { name: "Cameras" }).click();
    await admin.getByRole("link", { name: "Add camera" }).click();
    await admin.getByLabel("Name", { exact: true }).fill("Dock North");
    await admin.getByLabel("Labels").fill("site=dock");
    // Nothing listens on the camera's port + 1.
    const good = stack.cameraUrls[0];
    const bad = good.replace(/:(\d+)\//, (_, p) => `:${Number(p) + 1}/`);
    await admin.getByLabel("RTSP URL").fill(bad);
    await admin.getByRole("button", { name: "Test connection" }).click();
    const result = admin.getByTestId("connection-test");
    await result.waitFor({ timeout: 30_000 });
    assert.equal(await result.getAttribute("data-ok"), "false");
    await screenshot(admin, "06-camera-test-failed");
    await admin.getByLabel("RTSP URL").fill(good);
    await admin.getByRole("button", { name: "Test connection" }).click();
    await eventually("a passing connection test", async () => (await result.getAttribute("data-ok")) === "true", 30_000);
    assert.match(await result.textContent(), /H264 640×360/);
    await screenshot(admin, "07-camera-test-passed");
    await admin.getByRole("button", { name: "Add camera" }).click();
    await admin.getByRole("cell", { name: "Dock North", exact: true }).waitFor();
    await screenshot(admin, "08-cameras");
  });

  it("plays a 2×2 grid over WebRTC", async () => {
    const api = await adminApi();
    for (const name of ["Dock South", "Gate", "Yard"]) {
      await api.cameras.createCamera({ camera: { name, enabled: true, sourceUrl: stack.cameraUrls[1], labels: { site: name === "Gate" ? "gate" : "dock" } } });
    }
    site.cameras = (await api.cameras.listCameras({ pageSize: 50 })).cameras;
    assert.equal(site.cameras.length, 4);

    const started = Date.now();
    await admin.goto(`${stack.url}?layout=2x2`);
    const tiles = admin.locator('[data-testid="tile"]');
    await eventually("four tiles playing over WebRTC", async () => {
      const states = await tiles.evaluateAll((els) => els.map((e) => `${e.dataset.state}/${e.dataset.transport}`));
      return states.length === 4 && states.every((s) => s === "playing/webrtc");
    });
    console.log(`# 2x2 over WHEP: navigation to every tile's first frame ${Date.now() - started} ms`);
    const videos = await videosAdvance(admin, '[data-testid="tile"]');
    for (const v of videos) {
      assert.ok(v.width > 0 && v.advanced, `a tile is not playing: ${JSON.stringify(videos)}`);
    }
    await screenshot(admin, "09-live-grid-webrtc");
  });

  it("falls back to HLS when WebRTC is refused", async () => {
    await stack.media.refuseWhep();
    try {
      const started = Date.now();
      await admin.reload();
      await eventually(
        "four tiles playing over HLS",
        async () => {
          const states = await admin.locator('[data-testid="tile"]').evaluateAll((els) => els.map((e) => `${e.dataset.state}/${e.dataset.transport}`));
          return states.length === 4 && states.every((s) => s === "playing/hls");
        },
        40_000,
      );
      console.log(`# 2x2 over HLS (after WHEP refused): navigation to every tile's first frame ${Date.now() - started} ms`);
      const videos = await videosAdvance(admin, '[data-testid="tile"]');
      for (const v of videos) assert.ok(v.width > 0 && v.advanced, `a tile is not playing: ${JSON.stringify(videos)}`);
      const stats = await stack.media.stats();
      assert.ok(Object.values(stats.hls_served).some((n) => n > 0), `the fixture served HLS: ${JSON.stringify(stats)}`);
      await screenshot(admin, "10-live-grid-hls");
    } finally {
      await stack.media.acceptWhep();
    }
  });

  it("marks tiles stale when frames stop, and plays again when they resume", async () => {
    await admin.reload();
    const tiles = admin.locator('[data-testid="tile"]');
    await eventually("tiles playing", async () => (await tiles.evaluateAll((els) => els.filter((e) => e.dataset.state === "playing").length)) === 4);
    await stack.media.freeze();
    try {
      await eventually("a stale badge", async () => (await tiles.evaluateAll((els) => els.filter((e) => e.dataset.state === "stale").length)) > 0, 20_000);
      assert.equal(await tiles.first().getByText("Stale").isVisible(), true);
      await screenshot(admin, "11-stale");
    } finally {
      await stack.media.thaw();
    }
    await eventually("playing again", async () => (await tiles.evaluateAll((els) => els.filter((e) => e.dataset.state === "playing").length)) === 4, 30_000);
  });

  it("toasts a camera that goes offline", async () => {
    const gate = site.cameras.find((c) => c.name === "Gate");
    await stack.emulator.setAvailable(gate.pathName, false);
    const toast = admin.getByText("Camera offline: Gate").first();
    await toast.waitFor({ timeout: 30_000 });
    await screenshot(admin, "12-offline-toast");
    await stack.emulator.setAvailable(gate.pathName, true);
  });

  it("asks for a second factor before deleting a camera, then deletes it", async () => {
    // The step-up window (30 s on this site) must have passed since the last factor.
    const wait = site.lastFactorAt + 31_000 - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    await admin.goto(`${stack.origin}/ui/cameras`);
    await admin.getByRole("button", { name: "Delete Yard" }).click();
    await admin.getByRole("button", { name: "Delete camera" }).click();
    const dialog = admin.getByRole("dialog", { name: "Confirm it is you" });
    await dialog.waitFor();
    await screenshot(admin, "13-step-up");
    await dialog.getByLabel("Authentication code").fill(await site.totp.next());
    await dialog.getByRole("button", { name: "Confirm" }).click();
    await admin.getByText("Yard deleted").first().waitFor();
    await eventually("Yard gone from the list", async () => (await admin.getByRole("cell", { name: "Yard", exact: true }).count()) === 0);
  });

  it("shows a viewer only the cameras granted and no administration", async () => {
    const api = await adminApi();
    const { user } = await api.users.createUser({ user: { username: VIEWER.username, role: Role.VIEWER }, password: VIEWER.password });
    const gate = site.cameras.find((c) => c.name === "Gate");
    await api.cameras.grantCameraAccess({ cameraId: gate.id, userId: user.id, permissions: ["camera.read", "camera.live"] });
    const page = await newPage(browser);
    await signIn(page, VIEWER);
    const tiles = page.locator('[data-testid="tile"]');
    await eventually("the granted camera's tile", async () => (await tiles.count()) === 1);
    assert.equal(await tiles.first().getAttribute("data-camera"), "Gate");
    const nav = page.getByRole("navigation", { name: "Main" });
    assert.deepEqual(await nav.getByRole("link").allTextContents(), ["Live", "Events", "Account"]);
    await screenshot(page, "14-viewer");
    await page.goto(`${stack.origin}/ui/cameras`);
    await page.getByText("Not available").waitFor();
    site.viewer = { page, id: user.id };
  });

  it("signs the page out, saying why, when its session ends elsewhere", async () => {
    const { page, id } = site.viewer;
    await page.goto(stack.url);
    await page.getByRole("banner").waitFor();
    const api = await adminApi();
    await api.stepUpWithTotp(await site.totp.next());
    const { user } = await api.users.getUser({ userId: id });
    await api.users.updateUser({ user: { ...user, disabled: true }, updateMask: { paths: ["disabled"] } });
    // The grid's next status poll (every 5 s) finds the session revoked.
    await page.getByText("Your session ended").waitFor({ timeout: 20_000 });
    assert.equal(await page.getByLabel("Username").isVisible(), true, "back on the sign-in page");
    await screenshot(page, "16-session-ended");
    await page.context().close();
  });

  it("fits a phone: one column and a collapsed menu", async () => {
    const page = await newPage(browser, { width: 390, height: 844 });
    await signIn(page, ADMIN, site.totp);
    await page.goto(`${stack.url}?layout=2x2`);
    const tiles = page.locator('[data-testid="tile"]');
    await eventually("tiles", async () => (await tiles.count()) === 3);
    const boxes = await tiles.evaluateAll((els) => els.map((e) => e.getBoundingClientRect()).map((r) => ({ x: r.x, y: r.y, w: r.width })));
    assert.ok(boxes.every((b) => b.x === boxes[0].x && b.w > 300), `one column: ${JSON.stringify(boxes)}`);
    assert.ok(boxes[1].y > boxes[0].y && boxes[2].y > boxes[1].y, "stacked");
    assert.equal(await page.getByRole("link", { name: "Cameras" }).isVisible(), false, "navigation collapsed");
    await page.getByRole("button", { name: "Open menu" }).click();
    assert.equal(await page.getByRole("link", { name: "Cameras" }).isVisible(), true);
    await screenshot(page, "15-phone");
    await page.context().close();
  });
});
