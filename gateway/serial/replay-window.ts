// The per-device seq rule that, with the MAC, stops replayed radio frames: a
// frame recorded off the air (say while the receiver was jammed) must not
// raise an alert later at a time of the attacker's choosing.
import { deriveAlertId } from '../../protocol/index.ts';
import type { AlertRepo } from '../store/alert-repo.ts';

export class ReplayWindow {
  /** Highest alert seq per device: loaded from the store on first use, so the rule survives restarts. */
  private readonly highestAlert = new Map<string, number>();
  /** Highest heartbeat seq per device since start (heartbeats are not stored). */
  private readonly highestHeartbeat = new Map<string, number>();

  constructor(private readonly alerts: Pick<AlertRepo, 'get' | 'highestSeq'>) {}

  /**
   * The highest alert seq of the device when `seq` is a replay: at or below it
   * and not an alert of its own. A repeat of a stored alert is no replay: it
   * goes to the intake, which answers with the same alert and an ack again.
   */
  eventReplay(deviceId: string, seq: number): number | null {
    const highest = this.highestAlertSeq(deviceId);
    if (seq > highest || this.alerts.get(deriveAlertId(deviceId, seq))) return null;
    return highest;
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
