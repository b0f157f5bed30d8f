// A uniform grid over the unit square, to find the point under the pointer among 100k without a scan.
export class PointGrid {
  constructor(xs, ys, size) {
    this.size = Math.max(1, size);
    this.xs = xs;
    this.ys = ys;
    const cells = new Map();
    for (let i = 0; i < xs.length; i += 1) {
      const key = this.key(xs[i], ys[i]);
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(i);
    }
    this.cells = cells;
  }

  cellOf(v) { return Math.min(this.size - 1, Math.max(0, Math.floor(v * this.size))); }

  key(x, y) { return this.cellOf(y) * this.size + this.cellOf(x); }

  // The point (`accept(i)` true) whose square (half side `half`, world units) holds (x, y), nearest its centre;
  // -1 if none.
  at(x, y, half, accept) {
    let best = -1;
    let bestD = Infinity;
    const x0 = this.cellOf(x - half); const x1 = this.cellOf(x + half);
    const y0 = this.cellOf(y - half); const y1 = this.cellOf(y + half);
    for (let cy = y0; cy <= y1; cy += 1) {
      for (let cx = x0; cx <= x1; cx += 1) {
        for (const i of this.cells.get(cy * this.size + cx) || []) {
          if (!accept(i)) continue;
          const dx = Math.abs(this.xs[i] - x); const dy = Math.abs(this.ys[i] - y);
          if (dx > half || dy > half) continue;
          const d = dx * dx + dy * dy;
          if (d < bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
}
