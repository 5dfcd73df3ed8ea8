// Alert changes back to radio devices: an ACK line on the serial port of the
// receiver that last heard the device, so the button blinks "help is coming".
import type { Logger } from 'pino';
import { formatAck } from '../../protocol/index.ts';
import { ackFor, tellsDevice } from '../broker/mqtt-announcer.ts';
import type { Counters } from '../metrics/counters.ts';
import type { AlertBus } from '../pipeline/alert-bus.ts';
import type { DeviceRoutes } from './device-routes.ts';

export function announceOverSerial(bus: AlertBus, routes: DeviceRoutes, counters: Counters, log: Logger): () => void {
  return bus.on((change) => {
    const { alert } = change;
    if (alert.source !== 'serial' || !tellsDevice(change)) return;
    const link = routes.linkFor(alert.deviceId);
    const outcome = link?.send(formatAck({ deviceId: alert.deviceId, ...ackFor(change) })) ?? 'no-route';
    if (outcome === 'sent') {
      counters.inc('serial_acks_sent_total', { port: link?.name ?? '' });
      return;
    }
    // Not queued: the device retransmits until it hears an ack, and its repeat is acked again.
    counters.inc('serial_acks_dropped_total', { reason: outcome });
    log.debug({ alertId: alert.id, deviceId: alert.deviceId, state: alert.state, reason: outcome }, 'serial ack not sent');
  });
}
