import { describe, expect, it } from "vitest";
import { LAYOUTS, layout, layoutForKey, moveFocus, pageCount, pageItems } from "./layout";

/** Every cell of the grid covered exactly once by the layout's tiles. */
function coverage(id: (typeof LAYOUTS)[number]): number[][] {
  const l = layout(id);
  const cells = Array.from({ length: l.size }, () => Array.from({ length: l.size }, () => 0));
  for (const t of l.tiles) {
    for (let r = t.row; r < t.row + t.rowSpan; r++) {
      for (let c = t.column; c < t.column + t.columnSpan; c++) {
        const row = cells[r - 1];
        if (row) row[c - 1] = (row[c - 1] ?? 0) + 1;
      }
    }
  }
  return cells;
}

describe("layouts", () => {
  it.each(LAYOUTS)("%s covers every cell of its grid exactly once", (id) => {
    expect(coverage(id).flat().every((n) => n === 1)).toBe(true);
  });

  it("have the tile counts their names promise", () => {
    expect(LAYOUTS.map((id) => layout(id).tiles.length)).toEqual([1, 4, 9, 16, 6, 8]);
  });

  it("are picked by distinct digit keys", () => {
    expect(layoutForKey("2")).toBe("2x2");
    expect(layoutForKey("6")).toBe("1+7");
    expect(layoutForKey("9")).toBeUndefined();
    expect(new Set(LAYOUTS.map((id) => layout(id).key)).size).toBe(LAYOUTS.length);
  });
});

describe("paging", () => {
  const cams = Array.from({ length: 10 }, (_, i) => `cam${i}`);

  it("splits cameras into pages of the layout's size", () => {
    expect(pageCount("2x2", 10)).toBe(3);
    expect(pageItems("2x2", cams, 2)).toEqual(["cam8", "cam9"]);
  });

  it("clamps a page past the end to the last page", () => {
    expect(pageItems("3x3", cams, 7)).toEqual(["cam9"]);
  });

  it("shows one empty page when there are no cameras", () => {
    expect(pageCount("4x4", 0)).toBe(1);
    expect(pageItems("4x4", [], 0)).toEqual([]);
  });
});

describe("arrow focus", () => {
  it("moves right and down in a 2×2 grid and stops at the edges", () => {
    expect(moveFocus("2x2", 0, "ArrowRight", 4)).toBe(1);
    expect(moveFocus("2x2", 0, "ArrowDown", 4)).toBe(2);
    expect(moveFocus("2x2", 1, "ArrowRight", 4)).toBe(1);
    expect(moveFocus("2x2", 0, "ArrowUp", 4)).toBe(0);
  });

  it("moves from the large tile of 1+5 to the column beside it", () => {
    const right = moveFocus("1+5", 0, "ArrowRight", 6);
    expect(layout("1+5").tiles[right]?.column).toBe(3);
    expect(moveFocus("1+5", right, "ArrowLeft", 6)).toBe(0);
  });

  it("skips tiles that hold no camera", () => {
    expect(moveFocus("2x2", 0, "ArrowDown", 2)).toBe(0);
  });
});
