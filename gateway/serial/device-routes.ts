// Which receiver each radio device was last heard on, so that its acks go back
// through the dongle within its radio range. Only devices whose MAC verified
// are noted, so the map is bounded by the registry.
import type { PortLink } from './port-link.ts';

export class DeviceRoutes {
  private readonly links = new Map<string, PortLink>();

  note(deviceId: string, link: PortLink): void {
    this.links.set(deviceId, link);
  }

  linkFor(deviceId: string): PortLink | undefined {
    return this.links.get(deviceId);
  }

  devicesOn(link: PortLink): number {
    let n = 0;
    for (const l of this.links.values()) if (l === link) n++;
    return n;
  }
}
