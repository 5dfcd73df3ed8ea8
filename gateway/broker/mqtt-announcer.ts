// Alert changes out to MQTT: the pressing device's `ack` topic ("help is
// coming") and, for integrators, `safehaven/v1/alerts/{alertId}`.
import type { Logger } from 'pino';
import { topics, type AckPayload } from '../../protocol/index.ts';
import type { AlertBus, AlertChange, AlertChangeKind } from '../pipeline/alert-bus.ts';
import type { MqttBroker } from './mqtt-broker.ts';
import { filtersOverlap } from './topic-filter.ts';

export function ackFor(change: AlertChange): AckPayload {
  const { alert } = change;
  return { seq: alert.seq, alertId: alert.id, state: alert.state, ...(alert.policeStatus ? { police: alert.policeStatus } : {}) };
}

/**
 * What the pressing device hears about, over MQTT or radio: every state
 * change and police progress, and every repeat of the press (it may have
 * missed earlier acks). A delivery that moved no state, an overdue flag and a
 * reminder are for people, not for the button.
 */
const DEVICE_HEARS = new Set<AlertChangeKind>(['received', 'state', 'acked', 'resolved', 'repeat', 'police-status']);

export function tellsDevice(change: AlertChange): boolean {
  return DEVICE_HEARS.has(change.kind);
}

/** `onDeviceAck`: a device ack was handed to the broker (latency metrics time "help is coming" by it). */
export function announceOverMqtt(bus: AlertBus, broker: MqttBroker, log: Logger, onDeviceAck?: (change: AlertChange) => void): () => void {
  const failed = (what: string, alertId: string) => (err: unknown) => log.error({ err, alertId }, `could not publish ${what}`);
  // Integrator messages are not retained: until some client subscribes to them
  // (then for good, also for its offline persistent session), nobody can
  // receive one, and building and routing three per alert is wasted work.
  let integrators = false;
  broker.onSubscribe((filter) => {
    integrators ||= filtersOverlap(filter, topics.alert('+'));
  });
  return bus.on((change) => {
    const { alert } = change;
    if (alert.source === 'mqtt' && tellsDevice(change)) {
      broker.publish(topics.ack(alert.deviceId), JSON.stringify(ackFor(change)), { qos: 1, retain: false })
        .then(() => onDeviceAck?.(change), failed('device ack', alert.id));
    }
    if (integrators && change.kind !== 'repeat') {
      broker.publish(topics.alert(alert.id), JSON.stringify({ event: change.kind, alert, site: change.site }), { qos: 1, retain: false })
        .catch(failed('integrator alert', alert.id));
    }
  });
}
