// District boundaries for the dashboard map: a GeoJSON FeatureCollection of
// polygons (RFC 7946), supplied by the operator. Only what the map draws is
// checked; other members are kept as they are.
import { z } from 'zod';

/** A boundary file larger than this is refused: the browser would choke on it anyway. */
export const MAX_DISTRICTS_FILE_BYTES = 20 * 1024 * 1024;

const Position = z.tuple([z.number().min(-180).max(180), z.number().min(-90).max(90)]).rest(z.number());
const Ring = z.array(Position).min(4);

export const DistrictFeature = z.object({
  type: z.literal('Feature'),
  properties: z.record(z.string(), z.unknown()).nullable(),
  geometry: z.discriminatedUnion('type', [
    z.object({ type: z.literal('Polygon'), coordinates: z.array(Ring).min(1) }),
    z.object({ type: z.literal('MultiPolygon'), coordinates: z.array(z.array(Ring).min(1)).min(1) }),
  ]),
});

export const DistrictCollection = z.object({
  type: z.literal('FeatureCollection'),
  features: z.array(DistrictFeature).max(10_000),
});
export type DistrictCollection = z.infer<typeof DistrictCollection>;
