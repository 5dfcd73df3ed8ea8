// Alert changes out to MQTT: the pressing device's `ack` topic ("help is
// coming") and, for integrators, `safehaven/v1/alerts/{alertId}`.
import type { Logger } from 'pino';
import { topics, type AckPayload } from '../../protocol/index.ts';
import type { AlertBus, AlertChange } from '../pipeline/alert-bus.ts';
import type { MqttBroker } from './mqtt-broker.ts';

export function ackFor(change: AlertChange): AckPayload {
  return { seq: change.alert.seq, alertId: change.alert.id, state: change.alert.state };
}

/**
 * Which changes the pressing device hears of: every one but a delivery that
 * moved no state (the device already knows it), and every repeat of the press
 * (the device may have missed earlier acks). The same for MQTT and radio.
 */
export function tellsDevice(change: AlertChange): boolean {
  return change.kind !== 'delivered';
}

export function announceOverMqtt(bus: AlertBus, broker: MqttBroker, log: Logger): () => void {
  const failed = (what: string, alertId: string) => (err: unknown) => log.error({ err, alertId }, `could not publish ${what}`);
  return bus.on((change) => {
    const { alert } = change;
    if (alert.source === 'mqtt' && tellsDevice(change)) {
      broker.publish(topics.ack(alert.deviceId), JSON.stringify(ackFor(change)), { qos: 1, retain: false }).catch(failed('device ack', alert.id));
    }
    if (change.kind !== 'repeat') {
      broker.publish(topics.alert(alert.id), JSON.stringify({ event: change.kind, alert, site: change.site }), { qos: 1, retain: false })
        .catch(failed('integrator alert', alert.id));
    }
  });
}
