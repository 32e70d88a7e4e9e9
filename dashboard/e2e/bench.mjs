// Figures of the dashboard in a real browser, printed (not asserted): time from navigation to the
// first decoded frame of every tile of a 2×2 grid over WHEP and over HLS (median of 5 loads each),
// and the page's JS heap and Chromium's CPU with 16 tiles playing over WebRTC for a minute.
//
//   OPENNVR_TEST_PG_URL=postgres://… node dashboard/e2e/bench.mjs   (after the workspace and dashboard builds)
//
// Chromium's CPU is the user+system time of every Chromium process on the machine (start nothing
// else), as a share of one core.

import { readFileSync, readdirSync } from "node:fs";
import { createClient } from "@opennvr/sdk";
import { authenticator, eventually, launchBrowser, newPage } from "./browser.mjs";
import { startStack } from "./stack.mjs";

const PASSWORD = "correct horse battery staple";
const TICKS = 100; // USER_HZ

function chromiumCpuSeconds() {
  let ticks = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("chromium")) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks / TICKS;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function allPlaying(page, count, transport) {
  await eventually(
    `${count} tiles playing over ${transport}`,
    async () => {
      const states = await page.locator('[data-testid="tile"]').evaluateAll((els) => els.map((e) => `${e.dataset.state}/${e.dataset.transport}`));
      return states.length === count && states.every((s) => s === `playing/${transport}`);
    },
    90_000,
  );
}

const stack = await startStack({ cameras: 2 });
const browser = await launchBrowser();
try {
  const api = createClient(stack.apiUrl);
  await api.bootstrap(stack.setupToken(), "admin", PASSWORD);
  const started = await api.auth.startTotpEnrollment({});
  const totp = authenticator(started.secret);
  await api.auth.finishTotpEnrollment({ enrollmentToken: started.enrollmentToken, code: await totp.next(), name: "bench" });
  await api.refresh();
  for (let i = 1; i <= 16; i++) {
    await api.cameras.createCamera({ camera: { name: `Camera ${String(i).padStart(2, "0")}`, enabled: true, sourceUrl: stack.cameraUrls[i % 2] } });
  }

  const page = await newPage(browser);
  await page.goto(stack.url);
  await page.getByLabel("Username").fill("admin");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.getByLabel("Authentication code").fill(await totp.next());
  await page.getByRole("button", { name: "Verify" }).click();
  await page.getByRole("banner").waitFor();

  for (const transport of ["webrtc", "hls"]) {
    if (transport === "hls") await stack.media.refuseWhep();
    const times = [];
    for (let run = 0; run < 5; run++) {
      await page.goto("about:blank");
      const t0 = Date.now();
      await page.goto(`${stack.url}?layout=2x2`);
      await allPlaying(page, 4, transport);
      times.push(Date.now() - t0);
    }
    if (transport === "hls") await stack.media.acceptWhep();
    console.log(`2x2 over ${transport === "hls" ? "HLS (WHEP refused first)" : "WHEP"}: navigation to first frame of all 4 tiles, median of 5: ${median(times)} ms (runs: ${times.join(", ")})`);
  }

  await page.goto(`${stack.url}?layout=4x4`);
  await allPlaying(page, 16, "webrtc");
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("HeapProfiler.collectGarbage");
  const heapBefore = (await cdp.send("Runtime.getHeapUsage")).usedSize;
  const cpu0 = chromiumCpuSeconds();
  const wall0 = Date.now();
  await page.waitForTimeout(60_000);
  const cpu = (chromiumCpuSeconds() - cpu0) / ((Date.now() - wall0) / 1000);
  const heapAfter = (await cdp.send("Runtime.getHeapUsage")).usedSize;
  const playing = await page.locator('[data-testid="tile"]').evaluateAll((els) => els.filter((e) => e.dataset.state === "playing").length);
  console.log(
    `16 tiles over WebRTC for 60 s (640x360 H.264, 10 fps): JS heap ${(heapBefore / 2 ** 20).toFixed(1)} MiB at start, ${(heapAfter / 2 ** 20).toFixed(1)} MiB after; Chromium CPU ${(cpu * 100).toFixed(0)}% of one core; ${playing}/16 tiles playing at the end`,
  );
} finally {
  await browser.close();
  await stack.stop();
}
