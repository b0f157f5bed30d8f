import { describe, expect, it } from 'vitest';
import {
  labelText, parseHit, parseSimilarPage, regionIdFromAnnotationId,
} from '../src/lib/parse';

const page = {
  '@context': 'http://iiif.io/api/presentation/3/context.json',
  id: 'http://svc/similar/r1?k=2',
  items: [
    {
      // The shape web/app.py + iiif/similar.py answer with.
      body: [
        { format: 'text/plain', language: 'en', purpose: 'tagging', type: 'TextualBody', value: 'illustration' },
        { purpose: 'describing', type: 'TextualBody', value: 'similarity 0.9800 (rank 1, model fingerprint)' },
      ],
      canonical: 'http://svc/iiif/m1/annotation/rabc',
      id: 'http://svc/similar/r1?k=2#hit-1',
      motivation: 'highlighting',
      rank: 1,
      region: 'rabc',
      score: 0.98,
      target: {
        selector: { conformsTo: 'http://www.w3.org/TR/media-frags/', type: 'FragmentSelector', value: 'xywh=10,20,30,40' },
        source: {
          id: 'http://b/canvas/3',
          label: { none: ['f. 3r'] },
          partOf: [{ id: 'http://b/manifest', label: { en: ['A herbal'] }, type: 'Manifest' }],
          type: 'Canvas',
        },
        type: 'SpecificResource',
      },
      thumbnail: [{ format: 'image/jpeg', id: 'http://svc/regions/rabc/image.jpg', type: 'Image' }],
    },
    {
      // Search-2 style target, score on the body.
      body: { purpose: 'tagging', score: '0.5', type: 'TextualBody', value: 'map' },
      id: 'http://svc/iiif/m2/annotation/rdef',
      target: { id: 'http://c/canvas/9#xywh=1,2,3,4', partOf: { id: 'http://c/manifest', type: 'Manifest' } },
    },
    { id: 'broken', target: 'http://c/canvas/9' },
  ],
  next: { id: 'http://svc/similar/r1?k=2&page=2', type: 'AnnotationPage' },
  partOf: { total: 7, type: 'AnnotationCollection' },
  type: 'AnnotationPage',
};

describe('parseSimilarPage', () => {
  const parsed = parseSimilarPage(page, 'en');
  it('reads each hit with canvas, region, book, page, class, score and thumbnail', () => {
    expect(parsed.hits[0]).toEqual({
      canvasId: 'http://b/canvas/3',
      canvasLabel: 'f. 3r',
      classLabel: 'illustration',
      id: 'http://svc/similar/r1?k=2#hit-1',
      label: '',
      manifestId: 'http://b/manifest',
      manifestLabel: 'A herbal',
      regionId: 'rabc',
      score: 0.98,
      thumbnail: 'http://svc/regions/rabc/image.jpg',
      xywh: [10, 20, 30, 40],
    });
  });
  it('accepts a Search-2 style target and a score on the body', () => {
    expect(parsed.hits[1]).toMatchObject({
      canvasId: 'http://c/canvas/9', classLabel: 'map', manifestId: 'http://c/manifest', score: 0.5, xywh: [1, 2, 3, 4],
    });
  });
  it('drops annotations without a region and reads paging', () => {
    expect(parsed.hits).toHaveLength(2);
    expect(parsed.next).toBe('http://svc/similar/r1?k=2&page=2');
    expect(parsed.total).toBe(7);
  });
  it('reads a region annotation as the service now writes it (commenting, target with a fragment id)', () => {
    const hit = parseHit({
      body: [
        { format: 'text/plain', language: 'en', purpose: 'tagging', type: 'TextualBody', value: 'Illustration' },
        { format: 'text/plain', purpose: 'describing', type: 'TextualBody', value: 'Fig. 3' },
      ],
      id: 'http://svc/iiif/m1/annotation/r9',
      motivation: 'commenting',
      target: {
        id: 'http://b/canvas/3#xywh=5,6,7,8',
        selector: { conformsTo: 'http://www.w3.org/TR/media-frags/', type: 'FragmentSelector', value: 'xywh=5,6,7,8' },
        source: { id: 'http://b/canvas/3', partOf: [{ id: 'http://svc/iiif/m1/manifest', type: 'Manifest' }], type: 'Canvas' },
        type: 'SpecificResource',
      },
    });
    expect(hit).toMatchObject({
      canvasId: 'http://b/canvas/3', classLabel: 'Illustration', manifestId: 'http://svc/iiif/m1/manifest',
      regionId: 'r9', xywh: [5, 6, 7, 8],
    });
  });
  it('accepts a page without items or next', () => {
    expect(parseSimilarPage({ type: 'AnnotationPage' })).toEqual({ hits: [], next: null, total: null });
  });
});

describe('labels and ids', () => {
  it('picks the language asked for, then none, then en', () => {
    expect(labelText({ en: ['Map'], nb: ['Kart'] }, 'nb-NO')).toBe('Kart');
    expect(labelText({ en: ['Map'], none: ['X'] }, 'de')).toBe('X');
    expect(labelText('plain')).toBe('plain');
  });
  it('finds the region id in the service annotation ids', () => {
    expect(regionIdFromAnnotationId('http://svc/iiif/m1/annotation/r0123456789abcdef')).toBe('r0123456789abcdef');
    expect(regionIdFromAnnotationId('http://svc/iiif/m1/annotation/r01/text')).toBe('r01');
    expect(regionIdFromAnnotationId('http://other/anno/1')).toBeNull();
  });
});
