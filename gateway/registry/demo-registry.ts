// A reproducible registry of made-up stores and homes spread over all of Seoul,
// so demos and load tests exercise every district and police station without
// touching real people's data.
import { SEOUL_DISTRICTS, type District, type Site } from '../../protocol/schemas.ts';
import { DISTRICT_DATA, SEOUL_AREA_CODE, type Anchor, type DistrictData } from './seoul-districts.ts';

/** `seed` defaults to 1; the generator is 32-bit, so seeds equal modulo 2^32 give the same registry. */
export interface DemoRegistryOptions { stores: number; homes: number; seed?: number }

type Rng = () => number;

const STORE_BRANDS = ['GS25', 'CU', '7-Eleven', 'emart24'] as const;
const METRES_PER_DEGREE = 111_320;
/** Mixed into the seed so the homes do not shift when the number of stores changes. */
const HOME_STREAM = 0x9e3779b9;

/** mulberry32: tiny, fast and good enough to scatter demo data; not for anything secret. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function intBetween(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('cannot pick from an empty list');
  return item;
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
}

/**
 * Splits `total` over the districts by weight (largest remainder, ties to the
 * earlier district). Once there is enough for everyone, each district is
 * guaranteed one, so no district is ever missing from a full-size demo.
 */
function apportion(total: number, weights: readonly number[]): number[] {
  const floor = total >= weights.length ? 1 : 0;
  const rest = total - floor * weights.length;
  const weightSum = weights.reduce((sum, w) => sum + w, 0);
  const quotas = weights.map((w) => (rest * w) / weightSum);
  const counts = quotas.map((q) => floor + Math.floor(q));
  const leftover = total - counts.reduce((sum, c) => sum + c, 0);
  const byRemainder = quotas
    .map((q, index) => ({ index, remainder: q - Math.floor(q) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of byRemainder.slice(0, leftover)) counts[index] = (counts[index] ?? 0) + 1;
  return counts;
}

/** Uniform over the disc: sqrt keeps points from crowding the centre. */
function jitter(rng: Rng, { lat, lon, radiusM }: Anchor): { lat: number; lon: number } {
  const distance = radiusM * Math.sqrt(rng());
  const bearing = 2 * Math.PI * rng();
  const dLat = (distance * Math.cos(bearing)) / METRES_PER_DEGREE;
  const dLon = (distance * Math.sin(bearing)) / (METRES_PER_DEGREE * Math.cos((lat * Math.PI) / 180));
  return { lat: round6(lat + dLat), lon: round6(lon + dLon) };
}

function round6(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;
}

function padded(n: number): string {
  return String(n).padStart(4, '0');
}

/** Residential addresses sit on numbered side streets ("Dongil-ro 12-gil"), which branch off -ro/-daero roads. */
function sideStreet(road: string, n: number): string {
  return /-(ro|daero)$/.test(road) ? `${road} ${n}-gil` : road;
}

/**
 * Keeps branch names unique. Another brand at the same place is tried first,
 * as real chains rarely open twice in one neighbourhood; only then does
 * "CU Sinsa Branch" get a "CU Sinsa 2nd Branch", like a Korean "2호점".
 */
function branchNamer(): (rng: Rng, place: string) => string {
  const seen = new Map<string, number>();
  return (rng, place) => {
    const first = intBetween(rng, 0, STORE_BRANDS.length - 1);
    const names = [...STORE_BRANDS.slice(first), ...STORE_BRANDS.slice(0, first)].map((brand) => `${brand} ${place}`);
    const base = names.find((name) => !seen.has(name)) ?? `${STORE_BRANDS[first]} ${place}`;
    const count = (seen.get(base) ?? 0) + 1;
    seen.set(base, count);
    return count === 1 ? `${base} Branch` : `${base} ${ordinal(count)} Branch`;
  };
}

interface Placement { district: District; data: DistrictData; anchor: Anchor; lat: number; lon: number }

function place(rng: Rng, district: District): Placement {
  const data = DISTRICT_DATA[district];
  const anchor = pick(rng, data.anchors);
  const { lat, lon } = jitter(rng, anchor);
  return { district, data, anchor, lat, lon };
}

type Identity = Pick<Site, 'id' | 'kind' | 'name' | 'address' | 'phone'>;

/** Keys in the schema's order, so stored and served JSON reads like the spec. */
function toSite(identity: Identity, p: Placement): Site {
  // Spelled out rather than spread: V8's object spread made this the hot spot of the generator.
  const { id, kind, name, address, phone } = identity;
  return { id, kind, name, address, phone, lat: p.lat, lon: p.lon, district: p.district, policeStation: p.anchor.policeStation };
}

function makeStore(rng: Rng, n: number, p: Placement, nameBranch: ReturnType<typeof branchNamer>): Site {
  const middle = rng() < 0.5 ? intBetween(rng, 200, 999) : intBetween(rng, 2000, 9999);
  return toSite({
    id: `store-${padded(n)}`,
    kind: 'store',
    name: nameBranch(rng, p.anchor.name),
    address: `${intBetween(rng, 1, 300)} ${pick(rng, p.data.roads)}, ${p.district}, Seoul`,
    phone: `${SEOUL_AREA_CODE}-${middle}-${padded(intBetween(rng, 0, 9999))}`,
  }, p);
}

/** Homes carry no personal names: a household is only ever a number. */
function makeHome(rng: Rng, n: number, p: Placement): Site {
  const street = sideStreet(pick(rng, p.data.roads), intBetween(rng, 1, 40));
  const unit = intBetween(rng, 1, 25) * 100 + intBetween(rng, 1, 8);
  return toSite({
    id: `home-${padded(n)}`,
    kind: 'home',
    name: `Home patrol household #${padded(n)}`,
    address: `${intBetween(rng, 1, 300)} ${street}, Unit ${unit}, ${p.district}, Seoul`,
    phone: `010-${intBetween(rng, 2000, 9999)}-${padded(intBetween(rng, 0, 9999))}`,
  }, p);
}

/** Districts in SEOUL_DISTRICTS order, each repeated by its share of `total`. */
function districtSequence(total: number): District[] {
  const counts = apportion(total, SEOUL_DISTRICTS.map((d) => DISTRICT_DATA[d].weight));
  return SEOUL_DISTRICTS.flatMap((district, i) => Array<District>(counts[i] ?? 0).fill(district));
}

/** Same options, same sites: ids, names, addresses and points depend only on the seed and counts. */
export function generateDemoSites(opts: DemoRegistryOptions): Site[] {
  const { stores, homes, seed = 1 } = opts;
  checkCount('stores', stores);
  checkCount('homes', homes);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);

  const storeRng = mulberry32(seed);
  const homeRng = mulberry32(seed ^ HOME_STREAM);
  const nameBranch = branchNamer();
  const storeSites = districtSequence(stores).map((d, i) => makeStore(storeRng, i + 1, place(storeRng, d), nameBranch));
  const homeSites = districtSequence(homes).map((d, i) => makeHome(homeRng, i + 1, place(homeRng, d)));
  return [...storeSites, ...homeSites];
}
