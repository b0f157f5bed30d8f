// Pan and zoom: the world point at the centre of the canvas, and pixels per world unit.
export class View {
  constructor() { this.cx = 0.5; this.cy = 0.5; this.scale = 1; this.width = 1; this.height = 1; }

  resize(width, height) { this.width = Math.max(1, width); this.height = Math.max(1, height); }

  fit(x0, y0, x1, y1, margin = 0.06) {
    this.cx = (x0 + x1) / 2;
    this.cy = (y0 + y1) / 2;
    const w = Math.max(x1 - x0, 1e-3); const h = Math.max(y1 - y0, 1e-3);
    this.scale = Math.min(this.width / w, this.height / h) * (1 - 2 * margin);
  }

  toScreen(x, y) { return [(x - this.cx) * this.scale + this.width / 2, (y - this.cy) * this.scale + this.height / 2]; }

  toWorld(sx, sy) { return [(sx - this.width / 2) / this.scale + this.cx, (sy - this.height / 2) / this.scale + this.cy]; }

  panPixels(dx, dy) { this.cx -= dx / this.scale; this.cy -= dy / this.scale; }

  // Zoom by `factor`, keeping the world point under screen position (sx, sy) where it is.
  zoomAt(factor, sx, sy) {
    const [wx, wy] = this.toWorld(sx, sy);
    this.scale = Math.min(1e6, Math.max(20, this.scale * factor));
    const [nx, ny] = this.toWorld(sx, sy);
    this.cx += wx - nx;
    this.cy += wy - ny;
  }

  bounds() {
    const [x0, y0] = this.toWorld(0, 0);
    const [x1, y1] = this.toWorld(this.width, this.height);
    return { x0, y0, x1, y1 };
  }
}
