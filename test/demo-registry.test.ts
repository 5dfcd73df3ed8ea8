import { describe, it, expect } from 'vitest';
import { SEOUL_DISTRICTS, Site } from '../protocol/schemas.ts';
import { generateDemoSites } from '../gateway/registry/demo-registry.ts';
import { DISTRICT_DATA } from '../gateway/registry/seoul-districts.ts';

const DEFAULT_SIZE = { stores: 656, homes: 3000 };
const sites = generateDemoSites(DEFAULT_SIZE);
const stores = sites.filter((s) => s.kind === 'store');
const homes = sites.filter((s) => s.kind === 'home');

type Ring = Array<[lon: number, lat: number]>;
interface DistrictFeature {
  type: 'Feature';
  properties: { name_eng: string };
  geometry: { type: 'Polygon'; coordinates: Ring[] };
}

function feature(name: string, ring: Ring): DistrictFeature {
  return { type: 'Feature', properties: { name_eng: name }, geometry: { type: 'Polygon', coordinates: [ring] } };
}

// Rough outlines drawn by hand, generous but not overlapping: enough to catch an
// anchor placed in the wrong part of the city, with no boundary data to ship.
const HAND_MADE_BOUNDARIES = {
  type: 'FeatureCollection',
  features: [
    feature('Gangnam-gu', [
      [127.012, 37.530], [127.070, 37.530], [127.075, 37.505], [127.110, 37.495], [127.115, 37.465],
      [127.075, 37.455], [127.040, 37.470], [127.025, 37.495], [127.015, 37.512],
    ]),
    feature('Mapo-gu', [
      [126.860, 37.570], [126.880, 37.595], [126.905, 37.585], [126.935, 37.565],
      [126.965, 37.555], [126.965, 37.535], [126.935, 37.528], [126.900, 37.542],
    ]),
    feature('Nowon-gu', [
      [127.045, 37.695], [127.100, 37.700], [127.115, 37.640], [127.100, 37.610], [127.060, 37.610], [127.048, 37.640],
    ]),
  ] satisfies DistrictFeature[],
};

/** Ray casting: a ray going east from the point crosses the ring an odd number of times iff the point is inside. */
function insideRing(lon: number, lat: number, ring: Ring): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i]!;
    const [xj, yj] = ring[j]!;
    if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function insideFeature(f: DistrictFeature, lon: number, lat: number): boolean {
  const [outer, ...holes] = f.geometry.coordinates;
  return outer !== undefined && insideRing(lon, lat, outer) && !holes.some((h) => insideRing(lon, lat, h));
}

describe('generateDemoSites', () => {
  it('is deterministic for a seed and defaults to seed 1', () => {
    expect(generateDemoSites(DEFAULT_SIZE)).toEqual(sites);
    expect(generateDemoSites({ ...DEFAULT_SIZE, seed: 1 })).toEqual(sites);
  });

  it('gives different sites for a different seed', () => {
    const other = generateDemoSites({ ...DEFAULT_SIZE, seed: 2 });
    expect(other.map((s) => s.id)).toEqual(sites.map((s) => s.id));
    expect(other).not.toEqual(sites);
    expect(other.filter((s, i) => s.lat !== sites[i]?.lat).length).toBeGreaterThan(sites.length * 0.9);
  });

  it('keeps homes unchanged when only the number of stores changes', () => {
    const fewerStores = generateDemoSites({ ...DEFAULT_SIZE, stores: 30 });
    expect(fewerStores.filter((s) => s.kind === 'home')).toEqual(homes);
  });

  it('numbers stores then homes with zero-padded ids', () => {
    expect(stores).toHaveLength(656);
    expect(homes).toHaveLength(3000);
    expect(sites.slice(0, 656)).toEqual(stores);
    expect(stores.map((s) => s.id)).toEqual(stores.map((_, i) => `store-${String(i + 1).padStart(4, '0')}`));
    expect(homes.map((s) => s.id)).toEqual(homes.map((_, i) => `home-${String(i + 1).padStart(4, '0')}`));
    expect(new Set(sites.map((s) => s.id)).size).toBe(sites.length);
  });

  it('produces only sites that pass the strict Site schema', () => {
    for (const site of sites) expect(Site.parse(site)).toEqual(site);
  });

  it('covers all 25 districts with stores and with homes', () => {
    expect(new Set(stores.map((s) => s.district)).size).toBe(25);
    expect(new Set(homes.map((s) => s.district)).size).toBe(25);
  });

  it('apportions sites by district weight, at least one each', () => {
    const totalWeight = SEOUL_DISTRICTS.reduce((sum, d) => sum + DISTRICT_DATA[d].weight, 0);
    for (const district of SEOUL_DISTRICTS) {
      const expected = 1 + ((656 - 25) * DISTRICT_DATA[district].weight) / totalWeight;
      const count = stores.filter((s) => s.district === district).length;
      expect(Math.abs(count - expected), district).toBeLessThan(1);
    }
  });

  it('gives every store a unique branch name of a known brand', () => {
    expect(new Set(stores.map((s) => s.name)).size).toBe(stores.length);
    for (const s of stores) expect(s.name).toMatch(/^(GS25|CU|7-Eleven|emart24) .+ Branch$/);
  });

  it('names households only by number', () => {
    for (const [i, s] of homes.entries()) expect(s.name).toBe(`Home patrol household #${String(i + 1).padStart(4, '0')}`);
  });

  it('formats addresses and phones the Korean way', () => {
    for (const s of stores) {
      expect(s.address).toMatch(new RegExp(`^([1-9]\\d{0,2}) [A-Za-z0-9 -]+, ${s.district}, Seoul$`));
      expect(s.phone).toMatch(/^02-\d{3,4}-\d{4}$/);
    }
    for (const s of homes) {
      expect(s.address).toMatch(new RegExp(`^([1-9]\\d{0,2}) [A-Za-z0-9 -]+, Unit \\d{3,4}, ${s.district}, Seoul$`));
      expect(s.phone).toMatch(/^010-\d{4}-\d{4}$/);
    }
    const numbers = sites.map((s) => Number(s.address.split(' ')[0]));
    expect(Math.min(...numbers)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...numbers)).toBeLessThanOrEqual(300);
  });

  it('assigns a police station serving the site\'s district', () => {
    for (const s of sites) expect(DISTRICT_DATA[s.district].policeStations).toContain(s.policeStation);
  });

  it('places each site inside its own district (hand-made boundaries)', () => {
    for (const f of HAND_MADE_BOUNDARIES.features) {
      const own = sites.filter((s) => s.district === f.properties.name_eng);
      expect(own.length).toBeGreaterThan(0);
      for (const s of own) expect(insideFeature(f, s.lon, s.lat), `${s.id} at ${s.lat},${s.lon}`).toBe(true);
      const others = HAND_MADE_BOUNDARIES.features.filter((g) => g !== f);
      for (const s of own) expect(others.some((g) => insideFeature(g, s.lon, s.lat))).toBe(false);
    }
  });

  it('works for small registries', () => {
    const small = generateDemoSites({ stores: 3, homes: 2 });
    expect(small.map((s) => s.id)).toEqual(['store-0001', 'store-0002', 'store-0003', 'home-0001', 'home-0002']);
    for (const site of small) expect(Site.parse(site)).toEqual(site);
    expect(new Set(small.slice(0, 3).map((s) => s.district)).size).toBe(3);
    expect(generateDemoSites({ stores: 0, homes: 0 })).toEqual([]);
  });

  it('rejects counts that are not non-negative integers', () => {
    expect(() => generateDemoSites({ stores: -1, homes: 0 })).toThrow(RangeError);
    expect(() => generateDemoSites({ stores: 1.5, homes: 0 })).toThrow(RangeError);
    expect(() => generateDemoSites({ stores: 0, homes: Number.NaN })).toThrow(RangeError);
    expect(() => generateDemoSites({ stores: 0, homes: 0, seed: 0.5 })).toThrow(RangeError);
  });

  it('generates the default size well within 100 ms', () => {
    const start = performance.now();
    generateDemoSites(DEFAULT_SIZE);
    expect(performance.now() - start).toBeLessThan(100);
  });
});

describe('Seoul district data', () => {
  it('describes every district with 3-6 anchors and 4-8 roads', () => {
    for (const district of SEOUL_DISTRICTS) {
      const data = DISTRICT_DATA[district];
      expect(data.anchors.length, district).toBeGreaterThanOrEqual(3);
      expect(data.anchors.length, district).toBeLessThanOrEqual(6);
      expect(data.roads.length, district).toBeGreaterThanOrEqual(4);
      expect(data.roads.length, district).toBeLessThanOrEqual(8);
      expect(data.weight, district).toBeGreaterThan(0);
    }
  });

  it('uses each district\'s stations, every one of them, from the 31 of the Seoul police', () => {
    for (const district of SEOUL_DISTRICTS) {
      const { policeStations, anchors } = DISTRICT_DATA[district];
      expect(new Set(anchors.map((a) => a.policeStation)), district).toEqual(new Set(policeStations));
    }
    const all = new Set(SEOUL_DISTRICTS.flatMap((d) => DISTRICT_DATA[d].policeStations));
    expect(all.size).toBe(31);
  });

  it('keeps anchors in Seoul with a modest jitter radius', () => {
    for (const district of SEOUL_DISTRICTS) {
      for (const a of DISTRICT_DATA[district].anchors) {
        expect(a.lat).toBeGreaterThan(37.42);
        expect(a.lat).toBeLessThan(37.72);
        expect(a.lon).toBeGreaterThan(126.76);
        expect(a.lon).toBeLessThan(127.19);
        expect(a.radiusM).toBeGreaterThanOrEqual(100);
        expect(a.radiusM).toBeLessThanOrEqual(500);
      }
    }
  });
});
