// Drawing with three.js: one THREE.Points per atlas sheet, each point a sprite cut from its sheet's cell.
// Until a sheet has loaded, its points are drawn in their cluster's colour.
import {
  BufferAttribute, BufferGeometry, LinearFilter, LinearMipmapNearestFilter, OrthographicCamera, Points, Scene,
  ShaderMaterial, TextureLoader, WebGLRenderer,
} from 'three';

export const MIN_PX = 8;

const VERTEX = `
attribute float cell;
attribute float aspect;
attribute float shown;
attribute vec3 tint;
uniform float pointPx;
uniform float grid;
varying vec2 vCell;
varying float vAspect;
varying vec3 vTint;
void main() {
  gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
  gl_PointSize = shown > 0.5 ? pointPx : 0.0;
  float c = mod(cell, grid * grid);
  vCell = vec2(mod(c, grid), floor(c / grid));
  vAspect = aspect;
  vTint = tint;
}`;

const FRAGMENT = `
uniform sampler2D atlas;
uniform float grid;
uniform float hasTexture;
varying vec2 vCell;
varying float vAspect;
varying vec3 vTint;
void main() {
  vec2 p = gl_PointCoord;
  // The thumbnail sits centred in its square cell; the bars beside it are not drawn.
  vec2 size = vAspect >= 1.0 ? vec2(1.0, 1.0 / vAspect) : vec2(vAspect, 1.0);
  vec2 q = (p - 0.5) / size;
  if (abs(q.x) > 0.5 || abs(q.y) > 0.5) discard;
  if (hasTexture < 0.5) { gl_FragColor = vec4(vTint, 1.0); return; }
  gl_FragColor = texture2D(atlas, (vCell + p) / grid);
}`;

export function webglAvailable() {
  try {
    const canvas = document.createElement('canvas');
    return !!(canvas.getContext('webgl2') || canvas.getContext('webgl'));
  } catch (e) {
    return false;
  }
}

export function clusterColour(cluster) {
  if (cluster < 0) return [0.55, 0.53, 0.5];
  const h = (cluster * 0.618033988749895) % 1;
  const f = (n) => {
    const k = (n + h * 12) % 12;
    return 0.55 - 0.35 * Math.max(-1, Math.min(k - 3, 9 - k, 1));
  };
  return [f(0), f(8), f(4)];
}

export class MapRenderer {
  constructor(container, map, sheetUrl) {
    this.map = map;
    this.renderer = new WebGLRenderer({ antialias: false, alpha: false, powerPreference: 'high-performance' });
    this.renderer.setPixelRatio(window.devicePixelRatio || 1);
    this.renderer.setClearColor(0x2b2824, 1);
    container.appendChild(this.renderer.domElement);
    this.renderer.domElement.setAttribute('aria-hidden', 'true');
    this.scene = new Scene();
    this.camera = new OrthographicCamera(0, 1, 0, 1, -1, 1);
    this.maxPoint = this.renderer.getContext().getParameter(this.renderer.getContext().ALIASED_POINT_SIZE_RANGE)[1];
    const { cell, sheet } = map.header.atlas;
    this.grid = sheet / cell;
    this.perSheet = this.grid * this.grid;
    this.spriteMargin = 2 / Math.sqrt(Math.max(1, map.n));
    this.groups = this.buildGroups(sheetUrl);
    this.fraction = 1;
    this.frames = 0;
  }

  buildGroups(sheetUrl) {
    const { map } = this;
    const bySheet = new Map();
    for (let i = 0; i < map.n; i += 1) {
      const s = Math.floor(map.cell[i] / this.perSheet);
      if (!bySheet.has(s)) bySheet.set(s, []);
      bySheet.get(s).push(i);
    }
    const loader = new TextureLoader();
    const groups = [];
    // Within a sheet, points go in a fixed random order: drawing the first part of the buffer then draws a
    // fair sample of it (see draw: far out, fewer but larger thumbnails).
    this.frac = new Float32Array(map.n);
    let seed = 12345;
    const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    for (const [sheet, members] of bySheet) {
      for (let k = members.length - 1; k > 0; k -= 1) {
        const j = Math.floor(random() * (k + 1));
        [members[k], members[j]] = [members[j], members[k]];
      }
      members.forEach((i, k) => { this.frac[i] = k / members.length; });
      const m = members.length;
      const position = new Float32Array(m * 3);
      const cell = new Float32Array(m);
      const aspect = new Float32Array(m);
      const shown = new Float32Array(m).fill(1);
      const tint = new Float32Array(m * 3);
      members.forEach((i, j) => {
        position[3 * j] = map.x[i];
        position[3 * j + 1] = map.y[i];
        cell[j] = map.cell[i];
        aspect[j] = map.aspect[i] > 0 ? map.aspect[i] : 1;
        tint.set(clusterColour(map.cluster[i]), 3 * j);
      });
      const geometry = new BufferGeometry();
      geometry.setAttribute('position', new BufferAttribute(position, 3));
      geometry.setAttribute('cell', new BufferAttribute(cell, 1));
      geometry.setAttribute('aspect', new BufferAttribute(aspect, 1));
      geometry.setAttribute('shown', new BufferAttribute(shown, 1));
      geometry.setAttribute('tint', new BufferAttribute(tint, 3));
      const material = new ShaderMaterial({
        vertexShader: VERTEX,
        fragmentShader: FRAGMENT,
        uniforms: { atlas: { value: null }, grid: { value: this.grid }, hasTexture: { value: 0 }, pointPx: { value: 4 } },
        depthTest: false,
        depthWrite: false,
      });
      geometry.computeBoundingSphere();
      geometry.boundingSphere.radius += this.spriteMargin;  // sprites reach past their centres
      const points = new Points(geometry, material);  // culled by three.js when its patch is out of view
      this.scene.add(points);
      const group = { sheet, members, points, material, shown };
      loader.load(sheetUrl(sheet), (texture) => {
        texture.flipY = false;
        // No colour-space conversion: the shader writes the sheet's sRGB bytes as they are.
        texture.generateMipmaps = true;
        texture.minFilter = LinearMipmapNearestFilter;  // one mip level: half the texel reads of trilinear
        texture.magFilter = LinearFilter;
        texture.needsUpdate = true;
        material.uniforms.atlas.value = texture;
        material.uniforms.hasTexture.value = 1;
        group.loaded = true;
        if (this.onChange) this.onChange();
      });
      groups.push(group);
    }
    return groups;
  }

  setVisible(visible) {
    for (const g of this.groups) {
      g.members.forEach((i, j) => { g.shown[j] = visible[i] ? 1 : 0; });
      g.points.geometry.getAttribute('shown').needsUpdate = true;
    }
  }

  resize(width, height) { this.renderer.setSize(width, height, false); }

  draw(view, worldSize) {
    const bounds = view.bounds();
    this.camera.left = bounds.x0;
    this.camera.right = bounds.x1;
    this.camera.top = bounds.y0;
    this.camera.bottom = bounds.y1;
    this.camera.updateProjectionMatrix();
    // Thumbnails smaller than MIN_PX carry no picture: draw a fraction of them, larger, covering the same area
    // (a point's cost in a software renderer is per point, not per pixel).
    const ratio = this.renderer.getPixelRatio();
    const natural = worldSize * view.scale;
    this.fraction = Math.min(1, (natural / MIN_PX) ** 2);
    const px = Math.min(this.maxPoint, Math.max(natural, MIN_PX) * ratio);
    for (const g of this.groups) {
      g.material.uniforms.pointPx.value = px;
      g.points.geometry.setDrawRange(0, Math.ceil(this.fraction * g.members.length));
    }
    this.renderer.render(this.scene, this.camera);
    this.frames += 1;
  }

  get loadedSheets() { return this.groups.filter((g) => g.loaded).length; }
}
