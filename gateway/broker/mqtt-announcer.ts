// Alert changes out to MQTT: the pressing device's `ack` topic ("help is
// coming") and, for integrators, `safehaven/v1/alerts/{alertId}`.
import type { Logger } from 'pino';
import { topics, type AckPayload } from '../../protocol/index.ts';
import type { AlertBus, AlertChange } from '../pipeline/alert-bus.ts';
import type { MqttBroker } from './mqtt-broker.ts';

export function ackFor(change: AlertChange): AckPayload {
  return { seq: change.alert.seq, alertId: change.alert.id, state: change.alert.state };
}

/** `onDeviceAck`: a device ack was handed to the broker (latency metrics time "help is coming" by it). */
export function announceOverMqtt(bus: AlertBus, broker: MqttBroker, log: Logger, onDeviceAck?: (change: AlertChange) => void): () => void {
  const failed = (what: string, alertId: string) => (err: unknown) => log.error({ err, alertId }, `could not publish ${what}`);
  return bus.on((change) => {
    const { alert } = change;
    // Every change but a delivery that moved no state (the device already knows it), and every
    // repeat of the press (the device may have missed earlier acks): tell the device where its alert is.
    if (alert.source === 'mqtt' && change.kind !== 'delivered') {
      broker.publish(topics.ack(alert.deviceId), JSON.stringify(ackFor(change)), { qos: 1, retain: false })
        .then(() => onDeviceAck?.(change), failed('device ack', alert.id));
    }
    if (change.kind !== 'repeat') {
      broker.publish(topics.alert(alert.id), JSON.stringify({ event: change.kind, alert, site: change.site }), { qos: 1, retain: false })
        .catch(failed('integrator alert', alert.id));
    }
  });
}
