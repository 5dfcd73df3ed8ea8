// Configuration: one schema for the config file and the environment, validated
// at start-up so that a bad value stops the gateway with its name, not at 3 a.m.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { filterProblem } from './broker/topic-filter.ts';
import { DEVICE_TYPES, DeviceType, describeIssues, SERIAL_BAUD } from '../protocol/index.ts';

const Port = z.int().min(0).max(65535);
const HttpUrl = z.url({ protocol: /^https?$/ });

/** What a police endpoint accepts: our JSON webhook body, or OASIS CAP 1.2 XML. */
export const PoliceFormat = z.enum(['json', 'cap']);
export type PoliceFormat = z.infer<typeof PoliceFormat>;

export const PoliceRoute = z.strictObject({
  /** Police station name as in the sites' `policeStation`, or a district name. */
  match: z.string().min(1),
  url: HttpUrl,
  fallbackUrl: HttpUrl.optional(),
  secret: z.string().min(16).optional(),
  format: PoliceFormat.default('json'),
});
export type PoliceRoute = z.infer<typeof PoliceRoute>;

/** One RF receiver dongle. */
export const SerialPortConfig = z.strictObject({
  path: z.string().min(1),
  baudRate: z.int().min(1200).max(4_000_000).default(SERIAL_BAUD),
  /** In /healthz, logs and counters; default: the path. */
  name: z.string().regex(/^[A-Za-z0-9._/-]{1,64}$/, 'letters, digits and ._/- only, 1 to 64 characters').optional(),
});
export type SerialPortConfig = z.infer<typeof SerialPortConfig>;

const SerialSchema = z.strictObject({
  /** One dongle at the default baud rate; `ports` lists more. */
  path: z.string().min(1).optional(),
  ports: z.array(SerialPortConfig).default([]),
  /** A receiver down this long is trouble: logged as an error and flagged in /healthz. */
  offlineTroubleSec: z.int().min(1).max(86_400).default(60),
}).prefault({}).superRefine((serial, ctx) => {
  const ports = serialPorts(serial);
  for (const key of ['path', 'name'] as const) {
    const seen = new Set<string>();
    for (const port of ports) {
      if (seen.has(port[key])) ctx.addIssue({ code: 'custom', path: ['ports'], message: `two ports with ${key} ${port[key]}` });
      seen.add(port[key]);
    }
  }
});

/** Every configured dongle: `serial.path` (unless `ports` lists it too) and `serial.ports`. */
export function serialPorts(serial: { path?: string | undefined; ports: SerialPortConfig[] }): Array<Required<SerialPortConfig>> {
  const listed = serial.path !== undefined && !serial.ports.some((p) => p.path === serial.path)
    ? [{ path: serial.path, baudRate: SERIAL_BAUD }, ...serial.ports]
    : serial.ports;
  return listed.map((p) => ({ ...p, name: p.name ?? p.path }));
}

/** One device type's supervision: unset fields take the `supervision` defaults. */
const SupervisionClass = z.strictObject({
  /** Heartbeat interval pushed to devices of this type (config topic, radio CFG frame). */
  intervalSec: z.int().min(1).max(86_400).optional(),
  /** A device silent for interval + grace has missed its check-in: trouble. */
  graceSec: z.int().min(0).max(86_400).optional(),
  /** A battery at or below this percentage is trouble; null = mains powered, never checked. */
  lowBatteryPercent: z.int().min(0).max(100).nullable().optional(),
});

/** Mains-powered types are not battery-checked; the rest warn early enough for a battery change visit. */
const LOW_BATTERY_DEFAULT: Record<DeviceType, number | null> = {
  'panic-button': 20, 'motion-sensor': 15, 'door-sensor': 15, 'alarm-bell': 20, 'rf-receiver': null,
};

const SupervisionSchema = z.strictObject({
  /** Heartbeat interval of every type that does not set its own. */
  heartbeatSec: z.int().min(1).max(86_400).default(60),
  /** Grace after the interval, for every type that does not set its own. */
  graceSec: z.int().min(0).max(86_400).default(30),
  /** A connection lost without DISCONNECT (or a will saying offline) is trouble unless the device is back within this. */
  reconnectGraceSec: z.int().min(0).max(3600).default(2),
  classes: z.partialRecord(DeviceType, SupervisionClass).default({}),
}).prefault({});

export interface SupervisionClassConfig {
  intervalSec: number;
  graceSec: number;
  lowBatteryPercent: number | null;
}

/** Each device type's supervision, defaults filled in. */
export function supervisionClasses(supervision: z.infer<typeof SupervisionSchema>): Record<DeviceType, SupervisionClassConfig> {
  return Object.fromEntries(DEVICE_TYPES.map((type) => {
    const own = supervision.classes[type] ?? {};
    return [type, {
      intervalSec: own.intervalSec ?? supervision.heartbeatSec,
      graceSec: own.graceSec ?? supervision.graceSec,
      lowBatteryPercent: own.lowBatteryPercent === undefined ? LOW_BATTERY_DEFAULT[type] : own.lowBatteryPercent,
    }];
  })) as Record<DeviceType, SupervisionClassConfig>;
}

const TopicFilter = z.string().superRefine((f, ctx) => {
  const problem = filterProblem(f);
  if (problem) ctx.addIssue({ code: 'custom', message: `topic filter ${JSON.stringify(f)}: ${problem}` });
});

export const ServiceAccountSchema = z.strictObject({
  username: z.string().min(1).max(128),
  /** The password itself, or a `scrypt$…` hash from `safehaven hash-password`. */
  password: z.string().min(12, 'at least 12 characters'),
  publish: z.array(TopicFilter).default([]),
  subscribe: z.array(TopicFilter).default([]),
  /** Wins over both allow lists. */
  deny: z.array(TopicFilter).default([]),
});
export type ServiceAccountConfig = z.infer<typeof ServiceAccountSchema>;

/** PEM files of a TLS listener (MQTT over TLS, wss, or HTTPS). */
const TlsFilesShape = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  /** Trust anchors for client certificates. */
  ca: z.string().min(1).optional(),
  /** Refuse clients without a certificate that chains to `ca`. */
  requestCert: z.boolean().default(false),
});
const caForClientCerts = (t: { requestCert: boolean; ca?: string | undefined }) => !t.requestCert || t.ca !== undefined;
const TlsFilesSchema = TlsFilesShape.refine(caForClientCerts, { message: 'requestCert needs a ca file', path: ['ca'] });

export const ConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Bootstrap admin bearer token; when unset one is generated into the data dir. */
  adminToken: z.string().min(16, 'at least 16 characters').optional(),
  mqtt: z.strictObject({
    host: z.string().default('0.0.0.0'),
    port: Port.default(1883),
    /** Integrators' accounts (INTERFACES §2). */
    serviceAccounts: z.array(ServiceAccountSchema).default([]).refine(
      (list) => new Set(list.map((a) => a.username)).size === list.length, { message: 'usernames must be unique' },
    ),
    /** Packets larger than this are refused from their fixed header, before the body is read. */
    maxPacketBytes: z.int().min(1024).max(16 * 1024 * 1024).default(16 * 1024),
    /** Open MQTT connections at most, per listener (TCP, TLS, WebSocket). */
    maxConnections: z.int().min(1).max(1_000_000).default(100_000),
    /** Failed CONNECTs per source address, and per username, in a minute before further tries are refused unchecked. */
    authFailuresPerMinute: z.int().min(1).max(100_000).default(20),
    /** Messages per device and minute; beyond it heartbeats and status are dropped (never events) and the device is in flooding trouble. */
    deviceMessagesPerMinute: z.int().min(10).max(100_000).default(120),
    /** A connection that has not completed CONNECT by then is closed (half-open and slowloris floods). */
    connectTimeoutMs: z.int().min(100).max(120_000).default(10_000),
    /** Optional MQTT over TLS (mqtts), on its own port, beside plain TCP. */
    tls: TlsFilesShape.extend({ port: Port.default(8883) }).refine(caForClientCerts, { message: 'requestCert needs a ca file', path: ['ca'] }).optional(),
    /** Optional MQTT over WebSocket (ws://, or wss:// when `tls` is true and mqtt.tls gives the files). */
    ws: z.strictObject({ port: Port.default(8083), path: z.string().startsWith('/').default('/mqtt'), tls: z.boolean().default(false) }).optional(),
  }).prefault({}).refine((m) => !m.ws?.tls || m.tls !== undefined, { message: 'ws.tls needs the certificate files in mqtt.tls', path: ['ws', 'tls'] }),
  http: z.strictObject({
    host: z.string().default('0.0.0.0'),
    port: Port.default(8080),
    /** Host name shown in the start-up banner and used for links. */
    publicHost: z.string().default('localhost'),
    /** Serve the API and dashboard over HTTPS with these files. */
    tls: TlsFilesSchema.optional(),
    /** Requests per minute across the API, per token (per client address without one); failed token checks have their own, tighter limit. */
    rateLimitPerMinute: z.int().min(10).max(1_000_000).default(1200),
    /** Behind a reverse proxy: true (trust X-Forwarded-For) or the proxies' addresses (comma-separated). */
    trustProxy: z.union([z.boolean(), z.string().min(1)]).default(false),
  }).prefault({}),
  police: z.strictObject({
    /** Default route. Unset = an in-process police simulator (said loudly). */
    url: HttpUrl.optional(),
    /** HMAC key for the default route; when unset one is generated into the data dir. */
    secret: z.string().min(16, 'at least 16 characters').optional(),
    /** Fallback endpoint of the default route, engaged when the escalation window passes. */
    fallbackUrl: HttpUrl.optional(),
    /** Body format of the default route. */
    format: PoliceFormat.default('json'),
    routes: z.array(PoliceRoute).default([]),
    timeoutMs: z.int().min(100).max(60_000).default(5000),
    /**
     * POSTs in flight. At 1,000 alerts/s on a busy event loop each answer waits
     * tens of ms to be read, so 32 capped delivery below the arrival rate (BENCHMARKS.md).
     */
    concurrency: z.int().min(1).max(1024).default(256),
    retryBaseMs: z.int().min(10).max(60_000).default(500),
    retryMaxMs: z.int().min(100).max(3_600_000).default(30_000),
  }).prefault({}),
  escalation: z.strictObject({
    /** No 2xx within this long after receipt → the route's fallback endpoint is engaged too. */
    windowMs: z.int().min(100).max(600_000).default(10_000),
    /** An alert no dispatcher has acknowledged is announced again every this many seconds. */
    reminderSec: z.int().min(1).max(86_400).default(60),
  }).prefault({}),
  store: z.strictObject({
    /** FULL: a commit survives power loss. NORMAL: survives a process crash only. */
    synchronous: z.enum(['full', 'normal']).default('full'),
  }).prefault({}),
  demo: z.strictObject({
    /** Seed a demo registry of Seoul into an empty store. */
    enabled: z.boolean().default(true),
    stores: z.int().min(0).max(100_000).default(656),
    homes: z.int().min(0).max(100_000).default(3000),
    seed: z.int().default(1),
  }).prefault({}),
  influx: z.strictObject({
    /** An InfluxDB 1.x to use; its path names the database. Unset = the managed local influxd, if installed. */
    url: HttpUrl.optional(),
    /** Without a url: run a local influxd under <dataDir>/influxdb when one is installed. */
    managed: z.boolean().default(true),
    /** The managed influxd's HTTP port and its RPC (backup) port; 0 = any free port. */
    httpPort: Port.default(8086),
    rpcPort: Port.default(8088),
    /** How long InfluxDB keeps points (an InfluxQL duration: 30d, 12w, 1h…). */
    retention: z.string().regex(/^\d+[hdw]$/, 'a duration such as 30d, 12w or 72h').default('30d'),
    /** Points held while InfluxDB is slow or down; beyond this the oldest are dropped (and counted). */
    bufferSize: z.int().min(10).max(1_000_000).default(10_000),
    batchSize: z.int().min(1).max(10_000).default(500),
    flushIntervalMs: z.int().min(10).max(60_000).default(1000),
    /** Deadline of one write or query to InfluxDB. */
    timeoutMs: z.int().min(100).max(60_000).default(2000),
    /** Interval of the `gateway` and `device_health` series. */
    healthIntervalSec: z.int().min(1).max(3600).default(10),
  }).prefault({}),
  serial: SerialSchema,
  supervision: SupervisionSchema,
  dashboard: z.strictObject({
    /** Leaflet tile URL template; "off" or empty = no base map (sites and districts on a plain background). */
    tileUrl: z.union([z.literal(''), z.literal('off'), z.string().regex(/^https?:\/\/\S+\{z\}\S*$/, 'an http(s) URL template with {z}, {x} and {y}')])
      .default('https://tile.openstreetmap.org/{z}/{x}/{y}.png').transform((url) => (url === 'off' ? '' : url)),
    tileAttribution: z.string().max(300).default('© OpenStreetMap contributors'),
    /** A GeoJSON FeatureCollection of district boundaries drawn on the map; unset = none. */
    districtsFile: z.string().min(1).optional(),
  }).prefault({}),
});
export type Config = z.infer<typeof ConfigSchema>;

/**
 * Environment variables and the config path each one sets. The README's
 * configuration table is checked against this list by a test.
 */
export const ENV_VARS: ReadonlyArray<{ name: string; path: string; kind: 'string' | 'int' | 'bool'; doc: string }> = [
  { name: 'SAFEHAVEN_CONFIG', path: '', kind: 'string', doc: 'JSON config file; env vars override it' },
  { name: 'SAFEHAVEN_DATA_DIR', path: 'dataDir', kind: 'string', doc: 'store, generated secrets (default ./data)' },
  { name: 'SAFEHAVEN_LOG_LEVEL', path: 'logLevel', kind: 'string', doc: 'pino level (default info)' },
  { name: 'SAFEHAVEN_ADMIN_TOKEN', path: 'adminToken', kind: 'string', doc: 'bootstrap admin bearer token (default: generated into <dataDir>/admin-token)' },
  { name: 'SAFEHAVEN_MQTT_HOST', path: 'mqtt.host', kind: 'string', doc: 'MQTT bind address (default 0.0.0.0)' },
  { name: 'SAFEHAVEN_MQTT_PORT', path: 'mqtt.port', kind: 'int', doc: 'MQTT port (default 1883; 0 = any free port)' },
  { name: 'SAFEHAVEN_HTTP_HOST', path: 'http.host', kind: 'string', doc: 'HTTP bind address (default 0.0.0.0)' },
  { name: 'SAFEHAVEN_HTTP_PORT', path: 'http.port', kind: 'int', doc: 'HTTP port for API and dashboard (default 8080; 0 = any free port)' },
  { name: 'SAFEHAVEN_POLICE_URL', path: 'police.url', kind: 'string', doc: 'default police route (default: in-process simulator)' },
  { name: 'SAFEHAVEN_POLICE_SECRET', path: 'police.secret', kind: 'string', doc: 'HMAC key for the default route (default: generated into <dataDir>/police-secret)' },
  { name: 'SAFEHAVEN_POLICE_FALLBACK_URL', path: 'police.fallbackUrl', kind: 'string', doc: 'fallback endpoint of the default route, engaged after the escalation window' },
  { name: 'SAFEHAVEN_POLICE_FORMAT', path: 'police.format', kind: 'string', doc: 'body format of the default route: json (default) or cap (OASIS CAP 1.2 XML)' },
  { name: 'SAFEHAVEN_POLICE_TIMEOUT_MS', path: 'police.timeoutMs', kind: 'int', doc: 'per-attempt timeout of a police POST (default 5000)' },
  { name: 'SAFEHAVEN_ESCALATION_MS', path: 'escalation.windowMs', kind: 'int', doc: 'no police 2xx within this → fallback endpoint engaged too (default 10000)' },
  { name: 'SAFEHAVEN_REMINDER_SEC', path: 'escalation.reminderSec', kind: 'int', doc: 'unacknowledged alerts are re-announced this often (default 60)' },
  { name: 'SAFEHAVEN_STORE_SYNCHRONOUS', path: 'store.synchronous', kind: 'string', doc: 'full (survives power loss, default) or normal (survives a crash)' },
  { name: 'SAFEHAVEN_DEMO', path: 'demo.enabled', kind: 'bool', doc: 'seed the Seoul demo registry into an empty store (default true)' },
  { name: 'SAFEHAVEN_DEMO_STORES', path: 'demo.stores', kind: 'int', doc: 'demo safety-haven stores (default 656)' },
  { name: 'SAFEHAVEN_DEMO_HOMES', path: 'demo.homes', kind: 'int', doc: 'demo home-patrol households (default 3000)' },
  { name: 'SAFEHAVEN_HEARTBEAT_SEC', path: 'supervision.heartbeatSec', kind: 'int', doc: 'heartbeat interval pushed to devices of every type without its own (default 60)' },
  { name: 'SAFEHAVEN_HEARTBEAT_GRACE_SEC', path: 'supervision.graceSec', kind: 'int', doc: 'silence beyond interval + this is a missed check-in (default 30)' },
  { name: 'SAFEHAVEN_RECONNECT_GRACE_SEC', path: 'supervision.reconnectGraceSec', kind: 'int', doc: 'a connection lost without DISCONNECT is trouble unless back within this (default 2)' },
  { name: 'SAFEHAVEN_INFLUX_URL', path: 'influx.url', kind: 'string', doc: 'InfluxDB 1.x URL with database, e.g. http://127.0.0.1:8086/safehaven' },
  { name: 'SAFEHAVEN_INFLUX_MANAGED', path: 'influx.managed', kind: 'bool', doc: 'without an InfluxDB URL, run a local influxd under <dataDir>/influxdb if installed (default true)' },
  { name: 'SAFEHAVEN_INFLUX_HTTP_PORT', path: 'influx.httpPort', kind: 'int', doc: 'HTTP port of the managed influxd (default 8086; 0 = any free port)' },
  { name: 'SAFEHAVEN_INFLUX_RPC_PORT', path: 'influx.rpcPort', kind: 'int', doc: 'RPC (backup) port of the managed influxd (default 8088; 0 = any free port)' },
  { name: 'SAFEHAVEN_INFLUX_RETENTION', path: 'influx.retention', kind: 'string', doc: 'how long InfluxDB keeps points (default 30d)' },
  { name: 'SAFEHAVEN_DASHBOARD_TILE_URL', path: 'dashboard.tileUrl', kind: 'string', doc: 'map tile URL template (default OpenStreetMap; "off" = no base map)' },
  { name: 'SAFEHAVEN_DASHBOARD_DISTRICTS', path: 'dashboard.districtsFile', kind: 'string', doc: 'GeoJSON file of district boundaries drawn on the dashboard map (default none)' },
  { name: 'SAFEHAVEN_SERIAL_PATH', path: 'serial.path', kind: 'string', doc: 'RF receiver dongle serial port (unset = no serial bridge)' },
];

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string, readonly setting: string) {
    super(message);
  }
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    node = (typeof next === 'object' && next !== null ? next : (node[key] = {})) as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

function envValue(name: string, raw: string, kind: 'string' | 'int' | 'bool'): unknown {
  if (kind === 'string') return raw;
  if (kind === 'bool') {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected true or false`, name);
  }
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected a whole number`, name);
  return Number(raw);
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`SAFEHAVEN_CONFIG=${path}: cannot read: ${(err as Error).message}`, 'SAFEHAVEN_CONFIG');
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('top level must be an object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`SAFEHAVEN_CONFIG=${path}: not a JSON object: ${(err as Error).message}`, 'SAFEHAVEN_CONFIG');
  }
}

/**
 * Config file (if SAFEHAVEN_CONFIG names one), then env vars on top, then the
 * schema. Throws ConfigError naming the setting (and the env var that set it).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = env.SAFEHAVEN_CONFIG ? readConfigFile(env.SAFEHAVEN_CONFIG) : {};
  const fromEnv = new Map<string, string>();
  for (const { name, path, kind } of ENV_VARS) {
    const value = env[name];
    if (!path || value === undefined || value === '') continue;
    setPath(raw, path, envValue(name, value, kind));
    fromEnv.set(path, name);
  }
  const result = ConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const { field, message } = describeIssues(result.error);
  const envName = field ? fromEnv.get(field) : undefined;
  const where = envName ? `${envName} (${field})` : field ? `config setting ${field}` : 'config';
  throw new ConfigError(`invalid ${where}: ${message.replace(`${field}: `, '')}`, envName ?? field ?? 'config');
}
