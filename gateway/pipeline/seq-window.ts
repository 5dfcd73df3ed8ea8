// The per-device `seq` rule, for every transport: a device's seq only grows,
// so an event at or below the highest seq already made into an alert, and not
// itself an alert, is a replay (a radio frame recorded off the air, an old
// MQTT publish sent again) and never becomes a new alert. A repeat of a
// stored alert is no replay: the intake answers it with the same alert.
import type { AlertRepo } from '../store/alert-repo.ts';

export class SeqWindow {
  /** Highest alert seq per device: loaded from the store on first use, so the rule survives restarts. */
  private readonly highestAlert = new Map<string, number>();
  /** Highest heartbeat seq per device since start (heartbeats are not stored). */
  private readonly highestHeartbeat = new Map<string, number>();

  constructor(private readonly alerts: Pick<AlertRepo, 'highestSeq'>) {}

  /** The device's highest alert seq when `seq` is at or below it (the caller then tells a repeat of a stored alert from a replay). */
  eventReplay(deviceId: string, seq: number): number | null {
    const highest = this.highestAlertSeq(deviceId);
    return seq > highest ? null : highest;
  }

  /** Every new alert, whichever transport brought it, raises its device's floor. */
  noteAlert(deviceId: string, seq: number): void {
    const known = this.highestAlert.get(deviceId);
    // A device not loaded yet reads the store when it is first heard of, and the store has this alert.
    if (known !== undefined && seq > known) this.highestAlert.set(deviceId, seq);
  }

  /** The last heartbeat seq when `seq` does not follow it (a replay or a duplicate copy); otherwise records it. */
  heartbeatReplay(deviceId: string, seq: number): number | null {
    const last = this.highestHeartbeat.get(deviceId);
    if (last !== undefined && seq <= last) return last;
    this.highestHeartbeat.set(deviceId, seq);
    return null;
  }

  private highestAlertSeq(deviceId: string): number {
    let highest = this.highestAlert.get(deviceId);
    if (highest === undefined) {
      highest = this.alerts.highestSeq(deviceId) ?? -1;
      this.highestAlert.set(deviceId, highest);
    }
    return highest;
  }
}
