// The whole site the browser tests run against, from real parts: a fresh database in the caller's
// PostgreSQL cluster, real RTSP test cameras (GStreamer), the MediaMTX API emulator, the media
// fixture (real WebRTC over WHEP and real HLS from a camera, checking viewer tokens against the
// server's JWKS as MediaMTX does), and the OpenNVR server binary serving the built dashboard.
//
// Environment:
//   OPENNVR_TEST_PG_URL   PostgreSQL superuser URL of a running cluster (required)
//   OPENNVR_SERVER_BIN    the server binary [../target/release/opennvr-server]
//   OPENNVR_EMULATOR_BIN  the emulator binary [../target/release/mediamtx-emulator]
//   CHROMIUM_BIN          [/usr/bin/chromium]
//
// `node e2e/stack.mjs` starts it all and waits (for working on the dashboard by hand; Ctrl-C stops it).

import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const DASHBOARD = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const ROOT = resolve(DASHBOARD, "..");
const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(ROOT, "target");

/** A free TCP port on loopback. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `cmd`, logging to `log`; resolves once a stdout line matches `ready` (with the match). */
function start(name, cmd, args, { env = {}, ready, log, timeoutMs = 60_000 }) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const out = [];
  const write = (chunk) => {
    out.push(chunk.toString());
    if (log) writeFileSync(log, chunk, { flag: "a" });
  };
  child.stderr.on("data", write);
  const lines = createInterface({ input: child.stdout });
  const seen = [];
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not get ready in ${timeoutMs} ms:\n${out.join("")}`)), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${name} exited (${code}) before it was ready:\n${seen.join("\n")}\n${out.join("").slice(-4000)}`));
    });
    lines.on("line", (line) => {
      write(`${line}\n`);
      seen.push(line);
      if (!ready) return;
      const all = seen.join("\n");
      const m = all.match(ready);
      if (m) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        ok({ child, match: m });
      }
    });
  });
}

async function waitFor(what, probe, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

function psql(url, sql) {
  execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], { stdio: "pipe" });
}

function withDatabase(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

/**
 * Starts the site. Returns its URLs, the camera RTSP URLs, a `control` helper for the fixture and the
 * emulator, and `stop()`.
 */
export async function startStack({ cameras = 2, verbose = false } = {}) {
  const pg = process.env.OPENNVR_TEST_PG_URL;
  if (!pg) throw new Error("OPENNVR_TEST_PG_URL is not set: the browser tests need a PostgreSQL cluster (scripts/test starts one)");
  const serverBin = process.env.OPENNVR_SERVER_BIN ?? join(TARGET, "release", "opennvr-server");
  const emulatorBin = process.env.OPENNVR_EMULATOR_BIN ?? join(TARGET, "release", "mediamtx-emulator");
  for (const bin of [serverBin, emulatorBin]) if (!existsSync(bin)) throw new Error(`${bin} not found: build the workspace first`);
  const fixturePython = join(DASHBOARD, "e2e", "media", ".venv", "bin", "python");
  if (!existsSync(fixturePython)) throw new Error(`${fixturePython} not found: scripts/venv-sync dashboard/e2e/media/.venv dashboard/e2e/media/requirements.txt`);
  const dist = join(DASHBOARD, "dist");
  if (!existsSync(join(dist, "index.html"))) throw new Error("dashboard/dist is not built: npm run build");

  const work = mkdtempSync(join(tmpdir(), "opennvr-e2e-"));
  const logs = join(work, "logs");
  mkdirSync(logs);
  const children = [];
  const db = `opennvr_e2e_${Date.now()}_${process.pid}`;
  psql(pg, `CREATE DATABASE "${db}"`);

  const stop = async () => {
    for (const c of children.reverse()) {
      if (c.exitCode === null) c.kill("SIGTERM");
    }
    await Promise.all(
      children.map(
        (c) =>
          new Promise((r) => {
            if (c.exitCode !== null) return r();
            const t = setTimeout(() => {
              c.kill("SIGKILL");
              r();
            }, 5_000);
            c.on("exit", () => {
              clearTimeout(t);
              r();
            });
          }),
      ),
    );
    try {
      psql(pg, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    } catch {
      // the cluster may be gone already
    }
    if (!process.env.OPENNVR_E2E_KEEP) rmSync(work, { recursive: true, force: true });
  };

  try {
    // Cameras: real H.264 over RTSP.
    const cameraUrls = [];
    for (let i = 0; i < cameras; i++) {
      const port = await freePort();
      const { child } = await start(`camera ${i}`, "/usr/bin/python3", [join(ROOT, "server", "tests", "support", "rtsp_camera.py"), String(port)], {
        env: { RTSP_CAMERA_SIZE: "640x360" },
        ready: /^ready$/m,
        log: join(logs, `camera${i}.log`),
      });
      children.push(child);
      cameraUrls.push(`rtsp://127.0.0.1:${port}/stream`);
    }

    const port = await freePort();
    const origin = `http://localhost:${port}`;
    const jwks = `http://127.0.0.1:${port}/.well-known/jwks.json`;

    // MediaMTX's API, strict, trusting the server's JWKS; paths become available as added.
    const emu = await start("emulator", emulatorBin, ["--jwks-url", jwks, "--auto-available"], {
      ready: /^api (\S+)\ncontrol (\S+)$/m,
      log: join(logs, "emulator.log"),
    });
    children.push(emu.child);
    const [, apiUrl, emulatorControl] = emu.match;

    // The server.
    const dataDir = join(work, "data");
    mkdirSync(dataDir, { mode: 0o700 });
    const masterKey = join(work, "master.key");
    writeFileSync(masterKey, randomBytes(32), { mode: 0o600 });
    const whepPort = await freePort();
    const hlsPort = await freePort();
    const fixtureControlPort = await freePort();
    const server = spawn(serverBin, [], {
      env: {
        ...process.env,
        DATABASE_URL: withDatabase(pg, db),
        OPENNVR_MASTER_KEY_FILE: masterKey,
        OPENNVR_DATA_DIR: dataDir,
        OPENNVR_LISTEN: `127.0.0.1:${port}`,
        OPENNVR_ARGON2_MEMORY_KIB: "1024",
        OPENNVR_ARGON2_ITERATIONS: "1",
        OPENNVR_DASHBOARD_DIR: dist,
        OPENNVR_MEDIAMTX_API_URL: apiUrl,
        OPENNVR_MEDIAMTX_WHEP_URL: `http://127.0.0.1:${whepPort}`,
        OPENNVR_MEDIAMTX_HLS_URL: `http://127.0.0.1:${hlsPort}`,
        OPENNVR_CAMERA_NETWORKS: "127.0.0.0/8",
        OPENNVR_WEBAUTHN_RP_ID: "localhost",
        OPENNVR_WEBAUTHN_ORIGINS: origin,
        OPENNVR_STEP_UP_WINDOW_SECS: "30",
        NO_COLOR: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(server);
    const serverLog = join(logs, "server.log");
    server.stdout.on("data", (c) => writeFileSync(serverLog, c, { flag: "a" }));
    server.stderr.on("data", (c) => writeFileSync(serverLog, c, { flag: "a" }));
    await waitFor("the server's /healthz", async () => {
      if (server.exitCode !== null) throw new Error(`the server exited: ${readFileSync(serverLog, "utf8").slice(-3000)}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
    });

    // Real WebRTC and HLS from the first camera, behind the viewer-token check.
    const fixture = await start(
      "media fixture",
      fixturePython,
      [
        join(DASHBOARD, "e2e", "media", "fixture.py"),
        "--source",
        cameraUrls[0],
        "--jwks-url",
        jwks,
        "--whep-port",
        String(whepPort),
        "--hls-port",
        String(hlsPort),
        "--control-port",
        String(fixtureControlPort),
        "--issuer",
        "opennvr",
        "--audience",
        "mediamtx",
      ],
      { ready: /^ready$/m, log: join(logs, "fixture.log"), timeoutMs: 90_000 },
    );
    children.push(fixture.child);

    const post = async (url, body = "") => {
      const r = await fetch(url, { method: "POST", body });
      if (!r.ok) throw new Error(`POST ${url}: ${r.status} ${await r.text()}`);
      return r;
    };

    const stack = {
      url: `${origin}/ui/`,
      origin,
      apiUrl: `http://127.0.0.1:${port}`,
      cameraUrls,
      dataDir,
      logs,
      setupToken: () => readFileSync(join(dataDir, "setup-token"), "utf8").trim(),
      media: {
        freeze: () => post(`http://127.0.0.1:${fixtureControlPort}/freeze`),
        thaw: () => post(`http://127.0.0.1:${fixtureControlPort}/thaw`),
        refuseWhep: () => post(`http://127.0.0.1:${fixtureControlPort}/whep/refuse`),
        acceptWhep: () => post(`http://127.0.0.1:${fixtureControlPort}/whep/accept`),
        stats: async () => (await fetch(`http://127.0.0.1:${fixtureControlPort}/stats`)).json(),
      },
      emulator: {
        setAvailable: (path, available) => post(`${emulatorControl}/paths/${encodeURIComponent(path)}/available`, String(available)),
      },
      stop,
    };
    if (verbose) console.log(stack);
    return stack;
  } catch (err) {
    await stop();
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.env.OPENNVR_E2E_KEEP = "1";
  const stack = await startStack();
  console.log(`OpenNVR is at ${stack.url}\nsetup token: ${stack.setupToken()}\nlogs: ${stack.logs}\ncameras: ${stack.cameraUrls.join(" ")}`);
  const quit = async () => {
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGINT", quit);
  process.on("SIGTERM", quit);
}
