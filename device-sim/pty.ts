// The dongle's end of a serial line, and a virtual cable to put it on: socat
// makes a pty pair with stable link names, the gateway opens one end as its
// dongle port and the simulated dongle the other. Unplugging kills socat (both
// ends vanish, as with a pulled USB dongle); replugging starts it again under
// the same names.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { SerialPort } from 'serialport';
import { SERIAL_BAUD } from '../protocol/index.ts';
import type { DongleWire } from './dongle.ts';

/** Any path a SerialPort opens: a pty end, a USB-serial adapter looped to the gateway's. */
export class SerialWire implements DongleWire {
  private port: SerialPort | null = null;
  private readonly listeners: Array<(bytes: Buffer) => void> = [];

  async open(path: string): Promise<void> {
    const port = new SerialPort({ path, baudRate: SERIAL_BAUD, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    port.on('error', () => undefined); // the cable being pulled is the point, not a fault
    port.on('data', (bytes: Buffer) => this.listeners.forEach((listener) => listener(bytes)));
    this.port = port;
  }

  async close(): Promise<void> {
    const port = this.port;
    this.port = null;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  write(bytes: Buffer): void {
    if (!this.port) throw new Error('the serial wire is not open');
    this.port.write(bytes);
  }

  /** Listeners stay across close and open: a replugged cable is heard by the same dongle. */
  onData(listener: (bytes: Buffer) => void): void {
    this.listeners.push(listener);
  }
}

export class SocatMissingError extends Error {
  readonly code = 'SOCAT_MISSING';
  constructor() {
    super('socat is not installed: run scripts/install-system-deps.sh as root (it installs the Debian package socat)');
  }
}

const LINK_WAIT_MS = 5000;

export class PtyCable extends SerialWire {
  private socat: ChildProcess | null = null;

  /** `gatewayPath` is what the gateway opens; this wire is the `donglePath` end. */
  constructor(readonly gatewayPath: string, readonly donglePath: string) {
    super();
  }

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
    await this.open(this.donglePath);
  }

  /** Kills socat: both pty ends disappear. */
  async unplug(): Promise<void> {
    await this.close();
    const socat = this.socat;
    this.socat = null;
    if (socat && socat.exitCode === null && socat.signalCode === null) {
      const exited = new Promise((resolve) => socat.once('exit', resolve));
      socat.kill();
      await exited;
    }
  }
}
