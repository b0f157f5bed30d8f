// Decoding /map/{model}.bin (see web/atlas.py): magic, header length, JSON header, columns, region ids.
const MAGIC = 'IVSMAP01';
const TYPES = { x: Float32Array, y: Float32Array, cluster: Int32Array, book: Int32Array, page: Int32Array,
  class: Int32Array, cell: Int32Array, aspect: Float32Array };

export function decodeMap(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (magic !== MAGIC) throw new Error(`not a map (${magic})`);
  const headerLength = new DataView(buffer).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength)));
  const n = header.count;
  let offset = 12 + headerLength;
  const columns = {};
  for (const name of header.columns) {
    columns[name] = new TYPES[name](buffer, offset, n);
    offset += 4 * n;
  }
  const width = header.id_width;
  const idBytes = bytes.subarray(offset, offset + n * width);
  const ids = new Array(n);
  for (let i = 0; i < n; i += 1) {
    let end = i * width + width;
    while (end > i * width && idBytes[end - 1] === 0) end -= 1;
    ids[i] = String.fromCharCode(...idBytes.subarray(i * width, end));
  }
  return { header, n, ids, ...columns };
}
