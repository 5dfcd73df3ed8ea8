// The alarm tone, made with Web Audio (no file to fetch). Browsers allow
// sound only after a user gesture: the login click unlocks it; after a
// reload the header shows a button until the page is clicked once.
export class Alarm {
  private ctx: AudioContext | null = null;
  private timer: number | null = null;

  constructor(private readonly onLockChange: (locked: boolean) => void) {}

  /** Call from a user gesture. */
  unlock(): void {
    this.ctx ??= new AudioContext();
    void this.ctx.resume().then(() => this.onLockChange(false));
  }

  locked(): boolean {
    return !this.ctx || this.ctx.state !== 'running';
  }

  /** Rings (a two-tone pattern every 1.5 s) while `on` is true. */
  set(on: boolean): void {
    if (on && this.timer === null) {
      this.beep();
      this.timer = window.setInterval(() => this.beep(), 1500);
      if (this.locked()) this.onLockChange(true);
    } else if (!on && this.timer !== null) {
      window.clearInterval(this.timer);
      this.timer = null;
    }
  }

  private beep(): void {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== 'running') return;
    const t = ctx.currentTime;
    for (const [i, freq] of [988, 740, 988, 740].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'square';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.25, t + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.18 + 0.16);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t + i * 0.18);
      osc.stop(t + i * 0.18 + 0.17);
    }
  }
}
