// `npm start`: the gateway on embedded defaults, configured by SAFEHAVEN_* env
// vars and an optional config file. Exit codes: 0 clean stop, 1 failed, 2 bad config.
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, serialPorts, type Config } from './config.ts';
import { Gateway, type GatewayInfo } from './gateway.ts';
import { createRootLogger } from './logger.ts';

const MQTT_SCHEME = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' } as const;

export function banner(info: GatewayInfo, config: Config): string {
  const police = info.policeSimulator
    ? `${info.policeUrl}\n                !!! POLICE SIMULATOR: alerts do NOT reach the police. Set SAFEHAVEN_POLICE_URL. !!!`
    : info.policeUrl;
  return [
    '',
    '  SafeHaven gateway is running',
    `  MQTT          mqtt://${config.mqtt.host}:${info.mqttPort}   (devices: username = device id, password = secret)`,
    ...info.mqttListeners.filter((l) => l.kind !== 'tcp').map((l) => `  MQTT ${l.kind.padEnd(8)} ${MQTT_SCHEME[l.kind]}://${config.mqtt.host}:${l.port}${l.kind.startsWith('w') ? config.mqtt.ws!.path : ''}`),
    `  HTTP API      ${info.httpUrl}/api   (health: ${info.httpUrl}/healthz)`,
    `  Dashboard     ${info.httpUrl}/`,
    `  Admin token   ${info.adminTokenSource}`,
    `  Data dir      ${info.dataDir}   (store: safehaven.db, ${config.store.synchronous.toUpperCase()} sync)`,
    `  Registry      ${info.sites} sites, ${info.devices} devices`,
    `  Police route  ${police}`,
    `  InfluxDB      ${info.influx}`,
    `  Latency       ${info.httpUrl}/api/latency?window=1h   (p50/p95/p99 of every alert stage)`,
    `  Serial        ${serialPorts(config.serial).map((p) => p.path).join(', ') || 'not configured: no RF receiver bridge'}`,
    '  Stop with Ctrl-C (SIGINT) or SIGTERM.',
    '',
  ].join('\n');
}

export async function runGateway(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`safehaven: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createRootLogger(config.logLevel);
  const gateway = new Gateway(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down: no new connections, finishing in-flight dispatches');
    gateway.stop().then(
      () => {
        log.info('stopped cleanly');
        log.flush();
        process.exitCode = 0;
      },
      (err: unknown) => {
        log.fatal({ err }, 'shutdown failed');
        log.flush();
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  try {
    const info = await gateway.start();
    log.info({ ...info, ready: true }, 'gateway ready');
    process.stderr.write(banner(info, config));
  } catch (err) {
    log.fatal({ err }, 'gateway failed to start');
    log.flush();
    process.stderr.write(`safehaven: cannot start: ${(err as Error).message}\n`);
    await gateway.stop().catch(() => undefined);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await runGateway();
