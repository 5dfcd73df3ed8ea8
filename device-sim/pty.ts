// A virtual serial cable: socat makes a pty pair with stable link names, the
// gateway opens one end as its dongle port and the simulated dongle the other.
// Unplugging kills socat (both ends vanish, as with a pulled USB dongle);
// replugging starts it again under the same names.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SerialPort } from 'serialport';
import { SERIAL_BAUD } from '../protocol/index.ts';
import type { DongleWire } from './dongle.ts';

export class SocatMissingError extends Error {
  readonly code = 'SOCAT_MISSING';
  constructor() {
    super('socat is not installed: run scripts/install-system-deps.sh as root (it installs the Debian package socat)');
  }
}

const LINK_WAIT_MS = 5000;

export class PtyCable implements DongleWire {
  private socat: ChildProcess | null = null;
  private port: SerialPort | null = null;
  private readonly listeners: Array<(bytes: Buffer) => void> = [];

  /** `gatewayPath` is what the gateway opens; the dongle end is `donglePath`. */
  constructor(readonly gatewayPath: string, readonly donglePath: string) {}

  /** Starts socat and opens the dongle end. Throws SocatMissingError if socat is not installed. */
  async plug(): Promise<void> {
    if (spawnSync('socat', ['-V']).error) throw new SocatMissingError();
    const socat = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${this.gatewayPath}`, `pty,raw,echo=0,link=${this.donglePath}`], { stdio: 'ignore' });
    this.socat = socat;
    const deadline = Date.now() + LINK_WAIT_MS;
    while (!(existsSync(this.gatewayPath) && existsSync(this.donglePath))) {
      if (socat.exitCode !== null || Date.now() > deadline) throw new Error(`socat did not make ${this.gatewayPath} and ${this.donglePath}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const port = new SerialPort({ path: this.donglePath, baudRate: SERIAL_BAUD, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('error', () => undefined); // the cable being pulled is the point, not a fault
    port.on('data', (bytes: Buffer) => this.listeners.forEach((listener) => listener(bytes)));
    this.port = port;
  }

  /** Kills socat: both pty ends disappear. */
  async unplug(): Promise<void> {
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    const socat = this.socat;
    this.socat = null;
    if (socat && socat.exitCode === null && socat.signalCode === null) {
      const exited = new Promise((resolve) => socat.once('exit', resolve));
      socat.kill();
      await exited;
    }
  }

  write(bytes: Buffer): void {
    if (!this.port) throw new Error('the cable is unplugged');
    this.port.write(bytes);
  }

  onData(listener: (bytes: Buffer) => void): void {
    this.listeners.push(listener);
  }

  /** Resolves once everything written has left for the gateway's end. */
  drain(): Promise<void> {
    const port = this.port;
    return port ? new Promise((resolve, reject) => port.drain((err) => (err ? reject(err) : resolve()))) : Promise.resolve();
  }
}
