import { describe, expect, it, vi } from 'vitest';
import { buildNextRequest, buildSimilarRequest, fetchJson } from '../src/lib/request';

describe('buildSimilarRequest', () => {
  it('POSTs a drawn box as JSON with the filters', () => {
    const { url, init } = buildSimilarRequest('http://svc/ivs/', {
      canvasId: 'http://b/canvas/1', kind: 'box', manifestId: 'http://b/manifest', xywh: [1, 2, 30, 40],
    }, { classFilter: 'map', k: 5, model: 'fingerprint' });
    expect(url).toBe('http://svc/ivs/similar?model=fingerprint&k=5&class=map');
    expect(init.method).toBe('POST');
    expect(init.headers['Content-Type']).toBe('application/json');
    expect(JSON.parse(init.body)).toEqual({
      canvas: 'http://b/canvas/1', class: 'map', k: 5, model: 'fingerprint', xywh: '1,2,30,40',
    });
  });
  it('GETs a known region by id, escaping it and leaving out empty filters', () => {
    const { url, init } = buildSimilarRequest('http://svc', { kind: 'region', regionId: 'r/1 2' }, {
      k: 10, model: '', pageSize: 5,
    });
    expect(url).toBe('http://svc/similar/r%2F1%202?k=10&size=5');
    expect(init.method).toBe('GET');
  });
  it('refuses to run without an endpoint', () => {
    expect(() => buildSimilarRequest('', { kind: 'region', regionId: 'r1' })).toThrow(/endpoint/);
  });
  it('follows next links as they are', () => {
    expect(buildNextRequest('http://svc/similar/r1?page=2').url).toBe('http://svc/similar/r1?page=2');
  });
});

describe('fetchJson', () => {
  const respond = (status, body) => vi.fn(async () => ({
    ok: status < 400, status, text: async () => body,
  }));
  it('decodes JSON', async () => {
    expect(await fetchJson({ init: {}, url: 'u' }, respond(200, '{"a":1}'))).toEqual({ a: 1 });
  });
  it('reports the status and the service message', async () => {
    await expect(fetchJson({ init: {}, url: 'u' }, respond(404, '{"detail":"unknown region"}')))
      .rejects.toThrow('HTTP 404: unknown region');
  });
  it('rejects a body that is not JSON', async () => {
    await expect(fetchJson({ init: {}, url: 'u' }, respond(200, '<html>'))).rejects.toThrow(/not JSON/);
  });
});
