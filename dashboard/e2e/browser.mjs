// Chromium (Debian's, through playwright-core: nothing is downloaded), TOTP codes as an
// authenticator app computes them, screenshots for docs/screenshots, and a signed-in API client for
// arranging what a test needs through the public API.

import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { ROOT } from "./stack.mjs";

export const SCREENSHOTS = join(ROOT, "docs", "screenshots");

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}

/** A new page in a fresh context (its own storage), at a desktop size unless told otherwise. */
export async function newPage(browser, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme: "dark" });
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}

function base32(secret) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const ch of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(ch).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function code(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/**
 * An authenticator app for one secret. Each code works once on the server, which also accepts the
 * next 30-second step: `next()` hands out a step not used yet, waiting for the clock when both the
 * current and the next step are spent.
 */
export function authenticator(secret) {
  let last = -1;
  return {
    async next() {
      for (;;) {
        const now = Math.floor(Date.now() / 30_000);
        const step = Math.max(now, last + 1);
        if (step <= now + 1) {
          last = step;
          return code(secret, step);
        }
        await new Promise((r) => setTimeout(r, 1_000));
      }
    },
  };
}

/** Resolves once `probe()` is truthy (polled), or fails with `what`. */
export async function eventually(what, probe, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out: ${what}${last ? ` (${last})` : ""}`);
}

/** Every <video> in `locator`'s tiles: size, and whether time advances over a second. */
export async function videosAdvance(page, selector) {
  const before = await page.$$eval(selector, (els) => els.map((el) => el.querySelector("video")?.currentTime ?? -1));
  await page.waitForTimeout(1_500);
  const after = await page.$$eval(selector, (els) =>
    els.map((el) => {
      const v = el.querySelector("video");
      return { width: v?.videoWidth ?? 0, height: v?.videoHeight ?? 0, time: v?.currentTime ?? -1 };
    }),
  );
  return after.map((a, i) => ({ ...a, advanced: a.time > (before[i] ?? -1) }));
}
