// Vite: the dashboard is served by the OpenNVR server under /ui/. `npm run dev` proxies the API
// (grpc-web), the JWKS and the health routes to a running server (OPENNVR_URL, default
// http://127.0.0.1:7450) so that the page and the API share one origin, as in production.
import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vitest/config";

const server = process.env.OPENNVR_URL ?? "http://127.0.0.1:7450";

export default defineConfig({
  base: "/ui/",
  plugins: [react(), tailwindcss()],
  resolve: {
    // The SDK is linked from ../sdk/typescript with its own node_modules: use one copy of each.
    dedupe: ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web"],
  },
  build: {
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: {
    proxy: {
      "^/opennvr\\.v1\\..*": { target: server, changeOrigin: false },
      "/.well-known": server,
      "/healthz": server,
      "/readyz": server,
    },
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
