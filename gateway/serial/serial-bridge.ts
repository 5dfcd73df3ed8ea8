// The serial side of the gateway: one PortLink per configured dongle, their
// lines into one SerialUplink, alert changes back out as ACK lines, and the
// `serial` section of /healthz.
import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { SerialPortConfig } from '../config.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertBus } from '../pipeline/alert-bus.ts';
import type { AlertIntake } from '../pipeline/alert-intake.ts';
import type { Registry } from '../registry/registry.ts';
import type { Supervisor } from '../supervision/supervisor.ts';
import { DeviceRoutes } from './device-routes.ts';
import { PortLink, openSystemPort, REOPEN_POLICY, type LinkEvent, type PortFactory, type ReopenPolicy } from './port-link.ts';
import type { SeqWindow } from '../pipeline/seq-window.ts';
import { announceOverSerial } from './serial-acks.ts';
import { SerialUplink } from './serial-uplink.ts';

export interface SerialBridgeOptions {
  ports: Array<Required<SerialPortConfig>>;
  offlineTroubleSec: number;
  /** The heartbeat interval for a device's CFG frame; null for a device not in the registry. */
  heartbeatSec: (deviceId: string) => number | null;
}

export interface SerialBridgeDeps {
  registry: Registry;
  intake: AlertIntake;
  /** The same seq window as the intake's: radio heartbeats use it too. */
  window: SeqWindow;
  bus: AlertBus;
  /** Hears every radio check-in and the receivers' ports coming and going. */
  supervisor: Pick<Supervisor, 'heard' | 'statusOffline' | 'receiverPortChanged' | 'receiverDown' | 'receiverPortUp'>;
  clock: Clock;
  counters: Counters;
  log: Logger;
  /** Default: the system's serial ports; tests pass SerialPortMock. */
  portFactory?: PortFactory;
  reopen?: ReopenPolicy;
}

type PortStatus = ReturnType<PortLink['status']> & { devicesHeard: number };

export type SerialStatus =
  | { status: 'disabled' }
  | { status: 'ok' | 'degraded' | 'trouble'; trouble: boolean; ports: PortStatus[] };

export class SerialBridge {
  private readonly routes = new DeviceRoutes();
  private readonly links: PortLink[];
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly options: SerialBridgeOptions, private readonly deps: SerialBridgeDeps) {
    const uplink = new SerialUplink({ ...deps, routes: this.routes, presence: deps.supervisor, heartbeatSec: options.heartbeatSec });
    const linkDeps = {
      factory: deps.portFactory ?? openSystemPort, sink: uplink, clock: deps.clock, counters: deps.counters, reopen: deps.reopen ?? REOPEN_POLICY,
      watch: (link: PortLink, event: LinkEvent) => this.linkChanged(link, event),
    };
    this.links = options.ports.map((port) => new PortLink(port, options.offlineTroubleSec, { ...linkDeps, log: deps.log.child({ port: port.name }) }));
  }

  /** Opens every port in the background: a missing dongle never holds up the gateway. */
  start(): void {
    const { bus, counters, log } = this.deps;
    this.unsubscribe.push(
      announceOverSerial(bus, this.routes, counters, log),
    );
    for (const link of this.links) link.start();
    log.info({ ports: this.options.ports }, `serial bridge: ${this.links.length} RF receiver port(s)`);
  }

  async stop(): Promise<void> {
    this.unsubscribe.splice(0).forEach((off) => off());
    await Promise.all(this.links.map((link) => link.stop()));
  }

  /**
   * A receiver down past serial.offlineTroubleSec is a receiver-offline trouble: on its
   * rf-receiver device when the dongle has named itself and is registered, else on the port.
   */
  private linkChanged(link: PortLink, event: LinkEvent): void {
    const { supervisor } = this.deps;
    if (event === 'trouble') {
      const detail = `serial port ${link.name} (${link.config.path}) down for more than ${this.options.offlineTroubleSec} s: radio devices behind it are not heard`;
      supervisor.receiverDown(link.receiverId(), link.name, detail);
      return;
    }
    if (event === 'up') supervisor.receiverPortUp(link.name);
    supervisor.receiverPortChanged(link.receiverId());
  }

  /** A receiver (an `rf-receiver` device) is online while a port is open and the dongle on it has named itself. */
  isOnline(deviceId: string): boolean {
    return this.links.some((link) => link.receiverOnline(deviceId));
  }

  status(): SerialStatus {
    if (this.links.length === 0) return { status: 'disabled' };
    const ports = this.links.map((link) => ({ ...link.status(), devicesHeard: this.routes.devicesOn(link) }));
    const trouble = ports.some((p) => p.trouble);
    return { status: trouble ? 'trouble' : ports.every((p) => p.online) ? 'ok' : 'degraded', trouble, ports };
  }
}
