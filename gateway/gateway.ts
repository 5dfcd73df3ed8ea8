// The composition root: builds every component from the config and wires
// them together. Nothing else constructs components, so tests can start the
// whole gateway (on ephemeral ports, a temp data dir) or swap one dependency.
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { DeviceType } from '../protocol/index.ts';
import { DeviceRateLimiter } from './broker/device-rate-limiter.ts';
import { DeviceUplink } from './broker/device-uplink.ts';
import { AuthLimiter } from './broker/auth-limiter.ts';
import { tlsOptions, type Transport } from './broker/listeners.ts';
import { makeAuthenticate, makeAuthorizeForward, makeAuthorizePublish, makeAuthorizeSubscribe, makeEventLane, makeHeartbeatLane, type HookDeps } from './broker/hooks.ts';
import { eitherLane } from './broker/publish-lane.ts';
import { ServiceAccounts } from './broker/service-accounts.ts';
import { announceOverMqtt } from './broker/mqtt-announcer.ts';
import { MqttBroker } from './broker/mqtt-broker.ts';
import { systemClock, type Clock } from './clock.ts';
import { ConfigError, serialPorts, supervisionClasses, type Config, type SupervisionClassConfig } from './config.ts';
import { ADMIN_TOKEN_FILE, loadOrCreateSecret, POLICE_SECRET_FILE } from './data-dir-secrets.ts';
import { CircuitBreaker } from './dispatch/circuit-breaker.ts';
import { Dispatcher } from './dispatch/dispatcher.ts';
import { EscalationWatch } from './dispatch/escalation-watch.ts';
import { startPoliceClient, type PoliceHttpClient } from './dispatch/police-client.ts';
import { RouteTable } from './dispatch/route-table.ts';
import { buildApp } from './http/app.ts';
import { FeedHub } from './http/feed-hub.ts';
import type { HealthReport } from './http/routes/health.ts';
import { createRootLogger } from './logger.ts';
import { Counters } from './metrics/counters.ts';
import type { LatencyQuery } from './metrics/latency-query.ts';
import type { LatencyRecorder } from './metrics/latency-recorder.ts';
import { Metrics } from './metrics/metrics.ts';
import { RuntimeMonitor } from './metrics/runtime-monitor.ts';
import { AlertBus } from './pipeline/alert-bus.ts';
import { AlertIntake } from './pipeline/alert-intake.ts';
import { SeqWindow } from './pipeline/seq-window.ts';
import { AlertLifecycle } from './pipeline/alert-lifecycle.ts';
import { PoliceSim } from './police-sim/police-sim.ts';
import { PRESENCE_CHUNK_PAUSE_MS, Registry } from './registry/registry.ts';
import { backfillDemoRadioKeys, seedDemoRegistry } from './registry/seed.ts';
import { SerialBridge } from './serial/serial-bridge.ts';
import type { PortFactory } from './serial/port-link.ts';
import { AlertRepo } from './store/alert-repo.ts';
import { AuditRepo } from './store/audit-repo.ts';
import type { CommitQueue } from './store/commit-queue.ts';
import type { Db } from './store/database.ts';
import { DurableStore } from './store/durable-store.ts';
import { RegistryRepo } from './store/registry-repo.ts';
import { TokenRepo } from './store/token-repo.ts';
import { TroubleRepo } from './store/trouble-repo.ts';
import { DeviceControl } from './supervision/device-control.ts';
import { Supervisor } from './supervision/supervisor.ts';
import { TroubleBook } from './supervision/trouble-book.ts';
import type { PresenceSource, TroubleSource } from './supervision/trouble-source.ts';

export interface GatewayDeps {
  log?: Logger;
  clock?: Clock;
  policeClient?: PoliceHttpClient;
  /** Opens the RF receivers' serial ports; default: the system's (tests pass SerialPortMock). */
  serialPort?: PortFactory;
  /** Trouble entries and presence for the live feed; default: supervision's (a test may pass in-memory ones). */
  troubles?: TroubleSource;
  presence?: PresenceSource;
}

/** Where everything is, for the start-up banner, /healthz and tests. */
export interface GatewayInfo {
  /** The plain TCP port (INTERFACES §2). */
  mqttPort: number;
  /** Every MQTT listener: tcp, and tls / ws / wss when configured. */
  mqttListeners: Array<{ kind: Transport; port: number }>;
  httpPort: number;
  httpUrl: string;
  dataDir: string;
  policeUrl: string;
  policeSimulator: boolean;
  /** Where latency metrics go, for the banner. */
  influx: string;
  adminTokenSource: string;
  sites: number;
  devices: number;
}

const PRESENCE_FLUSH_MS = 5000;
/** WAL checkpoints on the worker thread: often enough that each copies little, so the hold for a WAL restart (which copies the rest) stays short. */
const CHECKPOINT_INTERVAL_MS = 250;
const SHUTDOWN_GRACE_MS = 5000;
/** Consecutive failures that open an endpoint's breaker: one blip is retried normally, a pattern is an outage. */
const BREAKER_FAILURES = 3;
/** Failed bearer-token checks per address and minute before the API answers 429 unchecked. */
const HTTP_AUTH_FAILURES_PER_MINUTE = 30;
/** Longest wait between probes of a dead endpoint: the police are back within this of returning. */
const BREAKER_MAX_OPEN_MS = 5000;

interface StoreParts {
  db: Db;
  commits: CommitQueue;
  registry: Registry;
  alerts: AlertRepo;
  audit: AuditRepo;
  tokens: TokenRepo;
  troubles: TroubleBook;
}

interface SupervisionParts {
  troubles: TroubleBook;
  supervisor: Supervisor;
  classes: Record<DeviceType, SupervisionClassConfig>;
}

interface PipelineParts {
  bus: AlertBus;
  lifecycle: AlertLifecycle;
  dispatcher: Dispatcher;
  intake: AlertIntake;
  window: SeqWindow;
  routes: RouteTable;
  policeUrl: string;
}

export class Gateway {
  readonly counters = new Counters();
  private readonly rootLog: Logger;
  private readonly clock: Clock;
  private store: DurableStore | null = null;
  private broker: MqttBroker | null = null;
  private http: FastifyInstance | null = null;
  private dispatcher: Dispatcher | null = null;
  private escalation: EscalationWatch | null = null;
  private policeClient: PoliceHttpClient | null = null;
  private registry: Registry | null = null;
  private routes: RouteTable | null = null;
  private authLimiter!: AuthLimiter;
  private floods!: DeviceRateLimiter;
  private metrics: Metrics | null = null;
  private presenceTimer: NodeJS.Timeout | null = null;
  private serial: SerialBridge | null = null;
  private supervisor: Supervisor | null = null;
  private troubles: TroubleBook | null = null;
  private feed: FeedHub | null = null;
  private readonly runtime = new RuntimeMonitor();
  /** The in-process police stand-in when no police URL is configured. */
  policeSim: PoliceSim | null = null;
  info: GatewayInfo | null = null;

  constructor(private readonly config: Config, private readonly deps: GatewayDeps = {}) {
    this.rootLog = deps.log ?? createRootLogger(config.logLevel);
    this.clock = deps.clock ?? systemClock;
  }

  async start(): Promise<GatewayInfo> {
    const store = await this.openStore();
    const adminToken = this.config.adminToken
      ? { value: this.config.adminToken, source: 'SAFEHAVEN_ADMIN_TOKEN' }
      : (({ value, path }) => ({ value, source: path }))(loadOrCreateSecret(this.config.dataDir, ADMIN_TOKEN_FILE));
    const metrics = await this.startMetrics();
    const pipeline = await this.wirePipeline(store, metrics.recorder);
    const supervision = this.startSupervision(store, pipeline);
    const { broker, control } = await this.startBroker(store, pipeline, supervision, metrics.recorder);
    this.metrics!.startHealth({
      connectedDevices: () => broker.connectedClients(), isOnline: (id) => supervision.supervisor.online(id),
      devices: () => store.registry.allDevices(), site: (id) => store.registry.site(id),
      openAlerts: () => store.alerts.openCount(), outboxDepth: () => store.alerts.pendingOutbox(),
    });
    pipeline.dispatcher.start();
    this.escalation!.start();
    this.startSerial(store, pipeline, supervision);
    const httpPort = await this.startHttp(store, pipeline, supervision, control, adminToken.value, metrics.query);
    // The demo police report progress back, so the whole loop (and the device's blinks) can be seen without a PSAP.
    const callbackHost = ['0.0.0.0', '::'].includes(this.config.http.host) ? '127.0.0.1' : this.config.http.host;
    const scheme = this.config.http.tls ? 'https' : 'http';
    this.policeSim?.scriptStatus(`${scheme}://${callbackHost.includes(':') ? `[${callbackHost}]` : callbackHost}:${httpPort}/api/police/status`);

    const counts = store.registry.counts();
    this.info = {
      mqttPort: broker.port(), mqttListeners: broker.endpoints(), httpPort, httpUrl: `${scheme}://${this.config.http.publicHost}:${httpPort}`, dataDir: this.config.dataDir,
      policeUrl: pipeline.policeUrl, policeSimulator: this.policeSim !== null, adminTokenSource: adminToken.source, influx: this.metrics!.describe(),
      sites: counts.sites, devices: counts.devices,
    };
    // From here on: start-up work (seeding, loading the registry) is not a stall of a running gateway.
    this.runtime.start();
    return this.info;
  }

  private log(module: string): Logger {
    return this.rootLog.child({ module });
  }

  /** The store and the registry held in memory, seeded with the demo city on first start. */
  private async openStore(): Promise<StoreParts> {
    const { config, clock } = this;
    this.store = new DurableStore({ dataDir: config.dataDir, synchronous: config.store.synchronous, checkpointIntervalMs: CHECKPOINT_INTERVAL_MS }, this.counters, this.log('store'));
    const { db, commits } = this.store.start();
    const registryRepo = new RegistryRepo(db);
    if (config.demo.enabled && registryRepo.siteCount() === 0) {
      await seedDemoRegistry(db, registryRepo, clock, { dataDir: config.dataDir, ...config.demo }, this.log('seed'));
    }
    backfillDemoRadioKeys(db, registryRepo, config.dataDir, this.log('seed'));
    const registry = (this.registry = new Registry(registryRepo, commits, clock));
    registry.load();
    this.presenceTimer = setInterval(() => registry.flushPresence({ pauseMs: PRESENCE_CHUNK_PAUSE_MS }).catch((err) => this.rootLog.error({ err }, 'presence flush failed')), PRESENCE_FLUSH_MS);
    this.presenceTimer.unref();
    const troubles = (this.troubles = new TroubleBook({
      repo: new TroubleRepo(db), commits, siteOf: (id) => registry.device(id)?.siteId ?? null, clock, counters: this.counters, log: this.log('troubles'),
    }));
    troubles.start();
    return { db, commits, registry, alerts: new AlertRepo(db), audit: new AuditRepo(db), tokens: new TokenRepo(db), troubles };
  }

  /** Latency and health metrics: InfluxDB (configured, managed or none) is never waited for. */
  private async startMetrics(): Promise<{ recorder: LatencyRecorder; query: LatencyQuery }> {
    this.metrics = new Metrics(this.config, { clock: this.clock, counters: this.counters, log: (module) => this.log(module) });
    return this.metrics.start();
  }

  /** Intake → store → bus → dispatcher, transport-independent: MQTT and serial both feed `intake`. */
  private async wirePipeline(store: StoreParts, latency: LatencyRecorder): Promise<PipelineParts> {
    const { config, clock, counters } = this;
    const { alerts, audit, commits, registry } = store;
    const policeSecret = config.police.secret ?? loadOrCreateSecret(config.dataDir, POLICE_SECRET_FILE).value;
    const policeUrl = config.police.url ?? (await this.startPoliceSim(policeSecret));
    const { fallbackUrl, format } = config.police;
    const routes = (this.routes = new RouteTable({ url: policeUrl, secret: policeSecret, fallbackUrl, format }, config.police.routes));
    const bus = new AlertBus(this.log('bus'));
    latency.attach(bus);
    // The dispatcher is built after the lifecycle it uses: looked up when an alert is resolved.
    const lifecycle = new AlertLifecycle({ alerts, audit, commits, registry, bus, clock, onResolving: (alertId) => this.dispatcher?.alertResolved(alertId) });
    this.policeClient = this.deps.policeClient ?? (await startPoliceClient({ connectionsPerOrigin: config.police.concurrency, log: this.log('dispatch') }));
    const breaker = new CircuitBreaker(
      { failureThreshold: BREAKER_FAILURES, openBaseMs: config.police.retryBaseMs, openMaxMs: Math.min(config.police.retryMaxMs, BREAKER_MAX_OPEN_MS) },
      clock, this.log('dispatch'),
    );
    const dispatcher = (this.dispatcher = new Dispatcher(
      { alerts, commits, lifecycle, registry, routes, http: this.policeClient, breaker, clock, counters, log: this.log('dispatch'), onStage: latency.dispatchStage },
      config.police,
    ));
    this.escalation = new EscalationWatch(
      { alerts, lifecycle, routes, onEscalated: () => dispatcher.notify(), clock, counters, log: this.log('escalation') }, config.escalation,
    );
    const window = new SeqWindow(alerts);
    const intake = new AlertIntake({ registry, alerts, commits, routes, window, bus, dispatchEarly: (alert, outbox) => dispatcher.dispatchNew(alert, outbox), onNewAlert: () => dispatcher.notify(), counters, log: this.log('intake') });
    return { bus, lifecycle, dispatcher, intake, window, routes, policeUrl };
  }

  /** Supervision of every device's check-ins, and the trouble entries it and the others raise. */
  private startSupervision(store: StoreParts, pipeline: PipelineParts): SupervisionParts {
    const { config, clock, counters } = this;
    const classes = supervisionClasses(config.supervision);
    const supervisor = (this.supervisor = new Supervisor({
      registry: store.registry, troubles: store.troubles, classes, reconnectGraceMs: config.supervision.reconnectGraceSec * 1000,
      connected: (id) => (this.broker?.isConnected(id) ?? false) || (this.serial?.isOnline(id) ?? false),
      clock, counters, log: this.log('supervision'),
    }));
    pipeline.bus.on((change) => supervisor.alertChanged(change));
    supervisor.start();
    return { troubles: store.troubles, supervisor, classes };
  }

  private async startBroker(
    store: StoreParts, pipeline: PipelineParts, supervision: SupervisionParts, latency: LatencyRecorder,
  ): Promise<{ broker: MqttBroker; control: DeviceControl }> {
    const { clock, counters } = this;
    const { registry } = store;
    const { supervisor, troubles } = supervision;
    const uplinkLog = this.log('uplink');
    this.floods = new DeviceRateLimiter(this.config.mqtt.deviceMessagesPerMinute, clock, {
      flooding: (deviceId, detail) => {
        counters.inc('device_flooding_total');
        uplinkLog.warn({ deviceId, code: 'DEVICE_FLOODING' }, `device ${deviceId} is flooding (${detail}): its extra heartbeats and status are dropped, its events are still taken`);
        troubles.raise('flooding', { deviceId }, `${detail}: extra heartbeats and status messages dropped, events still taken`);
      },
      calm: (deviceId) => troubles.clear('flooding', { deviceId }, 'a whole minute back under its message limit'),
    });
    // The limiter's minute starts again with the process: a flooding trouble from before would never see its calm minute.
    for (const t of troubles.open()) {
      if (t.kind === 'flooding' && t.deviceId) troubles.clear('flooding', { deviceId: t.deviceId }, 'gateway restarted: its message count starts again');
    }
    const uplink = new DeviceUplink({ intake: pipeline.intake, presence: supervisor, clock, counters, log: uplinkLog, rateLimiter: this.floods });
    const accounts = new ServiceAccounts(this.config.mqtt.serviceAccounts);
    const clash = accounts.names().find((name) => registry.device(name));
    // A device with that id could never log in again: refuse to start rather than lock a button out.
    if (clash) throw new ConfigError(`mqtt.serviceAccounts: username ${clash} is also a device id`, 'mqtt.serviceAccounts');
    this.authLimiter = new AuthLimiter(this.config.mqtt.authFailuresPerMinute, clock);
    const hookDeps: HookDeps = {
      registry, uplink, counters, log: this.log('mqtt'), accounts,
      limiter: this.authLimiter,
      principals: new WeakMap(),
      connectedClient: (id) => this.broker?.client(id),
    };
    const broker = (this.broker = new MqttBroker(this.config.mqtt, {
      authenticate: makeAuthenticate(hookDeps),
      authorizePublish: makeAuthorizePublish(hookDeps),
      authorizeSubscribe: makeAuthorizeSubscribe(hookDeps),
      authorizeForward: makeAuthorizeForward(hookDeps),
      lane: eitherLane(makeHeartbeatLane(hookDeps), makeEventLane(hookDeps)),
    }, counters, this.log('mqtt')));
    broker.onSession((change) => {
      const at = clock.now();
      if (!change.open) {
        supervisor.disconnected(change.clientId, change.lost, at);
      } else if (registry.device(change.clientId)?.revokedAt != null) {
        // Authenticated just before a revocation, ready just after it: closed now, as the revocation would have.
        broker.client(change.clientId)?.close();
      } else {
        supervisor.connected(change.clientId, at);
      }
    });
    await broker.start();
    announceOverMqtt(pipeline.bus, broker, this.log('announce'), latency.deviceAckSent);
    const control = new DeviceControl({
      registry, supervisor, classes: supervision.classes, publish: (topic, payload, opts) => broker.publish(topic, payload, opts),
      kick: (id) => {
        const client = broker.client(id);
        client?.close();
        return client !== undefined;
      },
      log: this.log('devices'),
    });
    await control.publishAllConfigs();
    return { broker, control };
  }

  /** RF receiver dongles, when any is configured; their events enter the same intake as MQTT's. */
  private startSerial(store: StoreParts, pipeline: PipelineParts, { supervisor, classes }: SupervisionParts): void {
    const ports = serialPorts(this.config.serial);
    if (ports.length === 0) return;
    const { registry } = store;
    const heartbeatSec = (id: string) => {
      const device = registry.device(id);
      return device ? classes[device.type].intervalSec : null;
    };
    this.serial = new SerialBridge({ ports, offlineTroubleSec: this.config.serial.offlineTroubleSec, heartbeatSec }, {
      registry, intake: pipeline.intake, window: pipeline.window, bus: pipeline.bus, supervisor,
      clock: this.clock, counters: this.counters, log: this.log('serial'), portFactory: this.deps.serialPort,
    });
    this.serial.start();
  }

  private async startHttp(
    store: StoreParts, pipeline: PipelineParts, { supervisor, troubles }: SupervisionParts, devices: DeviceControl, adminToken: string, latency: LatencyQuery,
  ): Promise<number> {
    const { registry, alerts, audit, tokens, commits } = store;
    const httpLimiter = new AuthLimiter(HTTP_AUTH_FAILURES_PER_MINUTE, this.clock);
    const health = () => this.health(pipeline.policeUrl);
    const homeAudit = { audit, commits, now: () => this.clock.now(), log: this.log('audit') };
    const feed = (this.feed = new FeedHub({
      bus: pipeline.bus, troubles: this.deps.troubles ?? troubles, presence: this.deps.presence ?? supervisor,
      alerts, registry, health, counters: this.counters, homeAudit, log: this.log('feed'),
    }));
    feed.start();
    const http = (this.http = await buildApp({
      auth: { tokens, adminToken, now: () => this.clock.now(), limiter: httpLimiter },
      security: () => ({ mqttAuthFailures: this.authLimiter.report(), httpAuthFailures: httpLimiter.report(), floodingDevices: this.floods.flooding() }),
      registry, alerts, audit, tokens, commits, homeAudit, lifecycle: pipeline.lifecycle, routes: pipeline.routes, counters: this.counters,
      health, latency, feed, dashboard: this.config.dashboard,
      isOnline: (id) => supervisor.online(id), devices, troubles,
      log: this.log('http'),
      rateLimitPerMinute: this.config.http.rateLimitPerMinute, trustProxy: this.config.http.trustProxy,
      ...(this.config.http.tls ? { https: await tlsOptions(this.config.http.tls) } : {}),
    }));
    await http.listen({ host: this.config.http.host, port: this.config.http.port });
    return (http.server.address() as AddressInfo).port;
  }

  private async startPoliceSim(secret: string): Promise<string> {
    this.policeSim = new PoliceSim({ host: '127.0.0.1', port: 0, secret, log: this.log('police-sim') });
    await this.policeSim.start();
    this.rootLog.warn({ url: this.policeSim.url() }, 'NO POLICE URL CONFIGURED: alerts go to an in-process POLICE SIMULATOR, not to the police. Set SAFEHAVEN_POLICE_URL.');
    return this.policeSim.url();
  }

  private health(policeUrl: string): HealthReport {
    const store = this.store!.status();
    const dispatch = this.dispatcher!.status();
    const simulator = this.policeSim !== null;
    const serial = this.serial?.status() ?? { status: 'disabled' };
    const status = !store.ok ? 'unhealthy' : simulator || dispatch.failingEndpoints.length > 0 || serial.status === 'trouble' ? 'degraded' : 'ok';
    return {
      status,
      ...(simulator ? { warning: 'ALERTS GO TO A POLICE SIMULATOR, NOT TO THE POLICE: set SAFEHAVEN_POLICE_URL' } : {}),
      broker: { status: 'ok', port: this.broker!.port(), connectedClients: this.broker!.connectedClients() },
      store: { status: store.ok ? 'ok' : 'failing', ...store },
      police: { simulator, defaultUrl: policeUrl, routes: this.routes!.describe(), clientThread: this.policeClient?.thread ?? null, ...dispatch },
      influx: this.metrics!.status(),
      serial,
      supervision: { ...this.supervisor!.status(), openTroubles: this.troubles!.openCount() },
      feed: this.feed?.status() ?? null,
      runtime: this.runtime.status(),
      counters: this.counters.snapshot(),
    };
  }

  /** Stops taking new work first, then lets in-flight work finish, then closes the store. */
  async stop(): Promise<void> {
    this.runtime.stop();
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    this.supervisor?.stop();
    // Live feeds never end by themselves: close them, or the server would wait for them.
    this.feed?.stop();
    await this.http?.close();
    await this.serial?.stop();
    await this.broker?.stop();
    await this.escalation?.stop();
    await this.dispatcher?.stop(SHUTDOWN_GRACE_MS);
    // Attempts still out after the grace are cut off; their rows stay due in the outbox for the next start.
    await this.policeClient?.close();
    await this.metrics?.stop();
    await this.registry?.flushPresence({ all: true }).catch((err) => this.rootLog.error({ err }, 'presence flush on shutdown failed'));
    await this.troubles?.stop();
    await this.store?.stop();
    await this.policeSim?.stop();
    this.http = this.broker = this.dispatcher = this.store = this.serial = this.metrics = this.supervisor = this.troubles = this.feed = null;
  }
}
