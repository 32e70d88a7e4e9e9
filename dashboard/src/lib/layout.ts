// Grid layouts of the live view: where each tile sits, which cameras a page shows, and where arrow
// keys move the focus. Pure functions, so that the maths is tested apart from the page.

/** The layouts an operator can pick. */
export const LAYOUTS = ["1x1", "2x2", "3x3", "4x4", "1+5", "1+7"] as const;
export type LayoutId = (typeof LAYOUTS)[number];

/** One tile's cell in a CSS grid (1-based lines, as `grid-column`/`grid-row` take them). */
export interface TileArea {
  column: number;
  row: number;
  columnSpan: number;
  rowSpan: number;
}

export interface Layout {
  id: LayoutId;
  /** Columns and rows of the grid. */
  size: number;
  tiles: TileArea[];
  /** What the picker shows, e.g. "2×2". */
  label: string;
  /** The digit key that picks it. */
  key: string;
}

const square = (n: number): TileArea[] =>
  Array.from({ length: n * n }, (_, i) => ({ column: (i % n) + 1, row: Math.floor(i / n) + 1, columnSpan: 1, rowSpan: 1 }));

/** One large tile spanning (n-1)×(n-1) cells at the top left, the other cells around it. */
const onePlus = (n: number): TileArea[] => {
  const tiles: TileArea[] = [{ column: 1, row: 1, columnSpan: n - 1, rowSpan: n - 1 }];
  for (let row = 1; row < n; row++) tiles.push({ column: n, row, columnSpan: 1, rowSpan: 1 });
  for (let column = 1; column <= n; column++) tiles.push({ column, row: n, columnSpan: 1, rowSpan: 1 });
  return tiles;
};

const DEFINITIONS: Record<LayoutId, Layout> = {
  "1x1": { id: "1x1", size: 1, tiles: square(1), label: "1×1", key: "1" },
  "2x2": { id: "2x2", size: 2, tiles: square(2), label: "2×2", key: "2" },
  "3x3": { id: "3x3", size: 3, tiles: square(3), label: "3×3", key: "3" },
  "4x4": { id: "4x4", size: 4, tiles: square(4), label: "4×4", key: "4" },
  "1+5": { id: "1+5", size: 3, tiles: onePlus(3), label: "1+5", key: "5" },
  "1+7": { id: "1+7", size: 4, tiles: onePlus(4), label: "1+7", key: "6" },
};

export function layout(id: LayoutId): Layout {
  return DEFINITIONS[id];
}

export function isLayoutId(v: unknown): v is LayoutId {
  return typeof v === "string" && (LAYOUTS as readonly string[]).includes(v);
}

/** The layout a digit key picks, if any. */
export function layoutForKey(key: string): LayoutId | undefined {
  return LAYOUTS.find((id) => DEFINITIONS[id].key === key);
}

/** How many pages `count` cameras fill in `id` (at least one, so an empty grid still shows). */
export function pageCount(id: LayoutId, count: number): number {
  return Math.max(1, Math.ceil(count / DEFINITIONS[id].tiles.length));
}

/** The items page `page` (0-based, clamped to the last page) shows, in tile order. */
export function pageItems<T>(id: LayoutId, items: readonly T[], page: number): T[] {
  const per = DEFINITIONS[id].tiles.length;
  const last = pageCount(id, items.length) - 1;
  const p = Math.min(Math.max(0, Math.floor(page)), last);
  return items.slice(p * per, p * per + per);
}

export type Direction = "ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown";

/**
 * The tile the focus moves to from tile `from` when an arrow key is pressed, among the first `shown`
 * tiles: the nearest tile whose centre lies in that direction (ties go to the one best aligned), or
 * `from` itself at the edge.
 */
export function moveFocus(id: LayoutId, from: number, direction: Direction, shown: number): number {
  const tiles = DEFINITIONS[id].tiles.slice(0, shown);
  const origin = tiles[from];
  if (!origin) return 0;
  const centre = (t: TileArea) => ({ x: t.column - 1 + t.columnSpan / 2, y: t.row - 1 + t.rowSpan / 2 });
  const o = centre(origin);
  let best = from;
  let bestScore = Number.POSITIVE_INFINITY;
  tiles.forEach((t, i) => {
    if (i === from) return;
    const c = centre(t);
    const dx = c.x - o.x;
    const dy = c.y - o.y;
    const [along, across] =
      direction === "ArrowLeft" ? [-dx, dy] : direction === "ArrowRight" ? [dx, dy] : direction === "ArrowUp" ? [-dy, dx] : [dy, dx];
    if (along <= 0) return;
    const score = along + 2 * Math.abs(across);
    if (score < bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}
