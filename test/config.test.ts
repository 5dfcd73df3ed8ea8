import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, ConfigError, serialPorts, supervisionClasses } from '../gateway/config.ts';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'safehaven-config-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes a config file and returns its path. */
function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

/** The ConfigError that `env` produces; fails the test if there is none. */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('loadConfig defaults', () => {
  const config = loadConfig({});

  it('has the documented defaults', () => {
    expect(config.mqtt.port).toBe(1883);
    expect(config.http.port).toBe(8080);
    expect(config.dataDir).toBe('./data');
    expect(config.demo).toMatchObject({ enabled: true, stores: 656, homes: 3000 });
    expect(config.store.synchronous).toBe('full');
    expect(config.police.url).toBeUndefined();
    expect(config.police.routes).toEqual([]);
    expect(config.adminToken).toBeUndefined();
  });

  it('ignores variables set to the empty string', () => {
    expect(loadConfig({ SAFEHAVEN_MQTT_PORT: '', SAFEHAVEN_DATA_DIR: '' })).toEqual(config);
  });
});

describe('loadConfig environment', () => {
  it.each([
    ['SAFEHAVEN_MQTT_PORT', '11883', (c) => c.mqtt.port, 11883],
    ['SAFEHAVEN_HTTP_PORT', '0', (c) => c.http.port, 0],
    ['SAFEHAVEN_DATA_DIR', '/var/lib/safehaven', (c) => c.dataDir, '/var/lib/safehaven'],
    ['SAFEHAVEN_POLICE_URL', 'https://police.example/alerts', (c) => c.police.url, 'https://police.example/alerts'],
    ['SAFEHAVEN_ADMIN_TOKEN', 'a-long-enough-admin-token', (c) => c.adminToken, 'a-long-enough-admin-token'],
    ['SAFEHAVEN_INFLUX_URL', 'http://127.0.0.1:8086/safehaven', (c) => c.influx.url, 'http://127.0.0.1:8086/safehaven'],
    ['SAFEHAVEN_INFLUX_MANAGED', 'false', (c) => c.influx.managed, false],
    ['SAFEHAVEN_INFLUX_HTTP_PORT', '0', (c) => c.influx.httpPort, 0],
    ['SAFEHAVEN_INFLUX_RPC_PORT', '18088', (c) => c.influx.rpcPort, 18088],
    ['SAFEHAVEN_INFLUX_RETENTION', '12w', (c) => c.influx.retention, '12w'],
    ['SAFEHAVEN_SERIAL_PATH', '/dev/ttyUSB0', (c) => c.serial.path, '/dev/ttyUSB0'],
    ['SAFEHAVEN_DEMO', 'off', (c) => c.demo.enabled, false],
    ['SAFEHAVEN_STORE_SYNCHRONOUS', 'normal', (c) => c.store.synchronous, 'normal'],
  ] satisfies Array<[string, string, (c: ReturnType<typeof loadConfig>) => unknown, unknown]>)(
    '%s=%s is applied',
    (name, value, read, expected) => {
      expect(read(loadConfig({ [name]: value }))).toEqual(expected);
    },
  );
});

describe('loadConfig with SAFEHAVEN_CONFIG', () => {
  it('reads the file and lets the environment override it, key by key', () => {
    const path = configFile({ dataDir: '/from/file', mqtt: { host: '127.0.0.1', port: 1999 }, police: { url: 'http://file.example/' } });
    const config = loadConfig({ SAFEHAVEN_CONFIG: path, SAFEHAVEN_MQTT_PORT: '2000' });
    expect(config.mqtt).toMatchObject({ host: '127.0.0.1', port: 2000, serviceAccounts: [] });
    expect(config.dataDir).toBe('/from/file');
    expect(config.police.url).toBe('http://file.example/');
  });

  it('lists SAFEHAVEN_SERIAL_PATH and the file\'s serial ports, each named and at 115200 baud unless set', () => {
    const path = configFile({ serial: { ports: [{ path: '/dev/ttyUSB1', name: 'rx-north' }, { path: '/dev/ttyACM0', baudRate: 57600 }], offlineTroubleSec: 5 } });
    const config = loadConfig({ SAFEHAVEN_CONFIG: path, SAFEHAVEN_SERIAL_PATH: '/dev/ttyUSB0' });
    expect(serialPorts(config.serial)).toEqual([
      { path: '/dev/ttyUSB0', baudRate: 115200, name: '/dev/ttyUSB0' },
      { path: '/dev/ttyUSB1', baudRate: 115200, name: 'rx-north' },
      { path: '/dev/ttyACM0', baudRate: 57600, name: '/dev/ttyACM0' },
    ]);
    expect(config.serial.offlineTroubleSec).toBe(5);
    expect(serialPorts(loadConfig({}).serial)).toEqual([]);
    expect(loadConfig({}).serial.offlineTroubleSec).toBe(60);
  });

  it('takes SAFEHAVEN_SERIAL_PATH naming a port the file lists as that port, once', () => {
    const path = configFile({ serial: { ports: [{ path: '/dev/ttyUSB0', name: 'rx-main', baudRate: 9600 }] } });
    expect(serialPorts(loadConfig({ SAFEHAVEN_CONFIG: path, SAFEHAVEN_SERIAL_PATH: '/dev/ttyUSB0' }).serial))
      .toEqual([{ path: '/dev/ttyUSB0', name: 'rx-main', baudRate: 9600 }]);
  });

  it('reads police routes from the file', () => {
    const route = { match: 'Gangnam-gu', url: 'https://gangnam.example/alerts' };
    const cap = { match: 'Mapo Police Station', url: 'https://mapo.example/cap', fallbackUrl: 'https://seoul.example/cap', format: 'cap' };
    expect(loadConfig({ SAFEHAVEN_CONFIG: configFile({ police: { routes: [route, cap] } }) }).police.routes).toEqual([{ ...route, format: 'json' }, cap]);
  });
});

describe('loadConfig errors', () => {
  it.each([
    ['a non-numeric port', { SAFEHAVEN_MQTT_PORT: 'abc' }, 'SAFEHAVEN_MQTT_PORT'],
    ['a port above 65535', { SAFEHAVEN_HTTP_PORT: '70000' }, 'SAFEHAVEN_HTTP_PORT'],
    ['a negative port', { SAFEHAVEN_MQTT_PORT: '-1' }, 'SAFEHAVEN_MQTT_PORT'],
    ['a police URL that is not a URL', { SAFEHAVEN_POLICE_URL: 'not a url' }, 'SAFEHAVEN_POLICE_URL'],
    ['a police URL that is not http(s)', { SAFEHAVEN_POLICE_URL: 'ftp://police.example/' }, 'SAFEHAVEN_POLICE_URL'],
    ['a boolean that is neither', { SAFEHAVEN_DEMO: 'maybe' }, 'SAFEHAVEN_DEMO'],
    ['a short admin token', { SAFEHAVEN_ADMIN_TOKEN: 'short' }, 'SAFEHAVEN_ADMIN_TOKEN'],
    ['an unknown synchronous mode', { SAFEHAVEN_STORE_SYNCHRONOUS: 'off' }, 'SAFEHAVEN_STORE_SYNCHRONOUS'],
    ['a retention that is not a duration', { SAFEHAVEN_INFLUX_RETENTION: '30 days' }, 'SAFEHAVEN_INFLUX_RETENTION'],
    ['an InfluxDB port above 65535', { SAFEHAVEN_INFLUX_HTTP_PORT: '80860' }, 'SAFEHAVEN_INFLUX_HTTP_PORT'],
  ])('names the variable for %s', (_label, env, name) => {
    const error = configError(env);
    expect(error.message).toContain(name);
    expect(error.setting).toBe(name);
    expect(error.code).toBe('CONFIG_INVALID');
  });

  it.each([
    ['an unknown top-level key', { mqt: { port: 1 } }, 'mqt'],
    ['an unknown nested key', { mqtt: { prot: 1 } }, 'mqtt.prot'],
    ['a route with a bad url', { police: { routes: [{ match: 'Gangnam-gu', url: 'nope' }] } }, 'police.routes[0].url'],
    ['two serial ports of one name', { serial: { ports: [{ path: '/dev/a', name: 'rx' }, { path: '/dev/b', name: 'rx' }] } }, 'serial.ports'],
    ['a serial port without a path', { serial: { ports: [{ name: 'rx' }] } }, 'serial.ports[0].path'],
  ])('names the setting for %s in the file', (_label, content, setting) => {
    const error = configError({ SAFEHAVEN_CONFIG: configFile(content) });
    expect(error.message).toContain(setting);
    expect(error.setting).toBe(setting);
  });

  it.each([
    ['not JSON', () => configFile('{ "mqtt": ')],
    ['a JSON array', () => configFile([1, 2])],
    ['missing', () => join(dir, 'no-such-file.json')],
  ])('names SAFEHAVEN_CONFIG when the file is %s', (_label, path) => {
    const error = configError({ SAFEHAVEN_CONFIG: path() });
    expect(error.message).toContain('SAFEHAVEN_CONFIG');
    expect(error.setting).toBe('SAFEHAVEN_CONFIG');
  });
});

describe('supervision classes', () => {
  it('fill each type from the defaults, the environment and the file', () => {
    const path = configFile({ supervision: { classes: { 'panic-button': { intervalSec: 30, graceSec: 10, lowBatteryPercent: 25 }, 'rf-receiver': { intervalSec: 120 } } } });
    const classes = supervisionClasses(loadConfig({ SAFEHAVEN_CONFIG: path, SAFEHAVEN_HEARTBEAT_SEC: '90', SAFEHAVEN_HEARTBEAT_GRACE_SEC: '20' }).supervision);
    expect(classes['panic-button']).toEqual({ intervalSec: 30, graceSec: 10, lowBatteryPercent: 25 });
    expect(classes['motion-sensor']).toEqual({ intervalSec: 90, graceSec: 20, lowBatteryPercent: 15 });
    expect(classes['rf-receiver']).toEqual({ intervalSec: 120, graceSec: 20, lowBatteryPercent: null });
  });

  it('refuses an unknown type or a bad interval, naming the setting', () => {
    expect(configError({ SAFEHAVEN_CONFIG: configFile({ supervision: { classes: { toaster: { intervalSec: 5 } } } }) }).message).toContain('supervision.classes');
    expect(configError({ SAFEHAVEN_CONFIG: configFile({ supervision: { classes: { 'door-sensor': { intervalSec: 0 } } } }) }).message)
      .toContain('supervision.classes.door-sensor.intervalSec');
    expect(configError({ SAFEHAVEN_HEARTBEAT_GRACE_SEC: '-1' }).setting).toBe('SAFEHAVEN_HEARTBEAT_GRACE_SEC');
  });
});
