// The same cable in memory, for tests: the gateway opens SerialPortMock ports
// through `factory`, and the simulated dongle writes into the open one and
// hears what the gateway writes. Unplugging closes the port as a disconnect
// does and makes reopening fail until it is plugged in again.
import { SerialPortMock } from 'serialport';
import type { PortFactory, SerialPortLike } from '../gateway/serial/port-link.ts';
import type { DongleWire } from './dongle.ts';

export class MockCable implements DongleWire {
  private port: SerialPortMock | null = null;
  private plugged = true;
  private readonly listeners: Array<(bytes: Buffer) => void> = [];
  /** Ports the gateway opened through `factory`, for tests that count reconnects. */
  opened = 0;

  constructor(readonly path: string) {}

  /** Give this to the gateway as its port factory. */
  readonly factory: PortFactory = ({ path, baudRate }): SerialPortLike => {
    if (path !== this.path) throw new Error(`MockCable for ${this.path} asked to open ${path}`);
    if (this.plugged) SerialPortMock.binding.createPort(path);
    // Unplugged, the path names no port, and opening fails as it does for a missing device.
    const port = new SerialPortMock({ path: this.plugged ? path : `${path}.unplugged`, baudRate, autoOpen: false });
    port.once('open', () => {
      this.opened++;
      this.port = port;
      if (port.port) this.tapWrites(port.port);
    });
    return port;
  };

  write(bytes: Buffer): void {
    const binding = this.port?.port;
    if (binding?.isOpen) binding.emitData(bytes);
  }

  onData(listener: (bytes: Buffer) => void): void {
    this.listeners.push(listener);
  }

  /** Closes the gateway's port as a pulled USB dongle does (a 'close' carrying a disconnect error). */
  unplug(): void {
    this.plugged = false;
    const port = this.port;
    this.port = null;
    // What SerialPortStream itself passes when a read fails under it.
    if (port?.isOpen) port.close(undefined, Object.assign(new Error('mock dongle unplugged'), { disconnected: true }));
  }

  plug(): void {
    this.plugged = true;
  }

  private tapWrites(binding: NonNullable<SerialPortMock['port']>): void {
    const write = binding.write.bind(binding);
    binding.write = async (buffer: Buffer) => {
      await write(buffer);
      this.listeners.forEach((listener) => listener(Buffer.from(buffer)));
    };
  }
}
