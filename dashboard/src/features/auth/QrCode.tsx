// A QR code drawn as SVG rectangles (no image data, nothing fetched), for the otpauth:// URI.

import qrcode from "qrcode-generator";
import { useMemo } from "react";

export function QrCode({ text, label, size = 200 }: { text: string; label: string; size?: number }) {
  const { cells, count } = useMemo(() => {
    const qr = qrcode(0, "M");
    qr.addData(text);
    qr.make();
    const n = qr.getModuleCount();
    const dark: [number, number][] = [];
    for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (qr.isDark(r, c)) dark.push([c, r]);
    return { cells: dark, count: n };
  }, [text]);
  const quiet = 4;
  const extent = count + 2 * quiet;
  return (
    <svg role="img" aria-label={label} width={size} height={size} viewBox={`0 0 ${extent} ${extent}`} shapeRendering="crispEdges" className="rounded bg-white">
      <rect width={extent} height={extent} fill="#fff" />
      <path fill="#000" d={cells.map(([x, y]) => `M${x + quiet},${y + quiet}h1v1h-1z`).join("")} />
    </svg>
  );
}
