// Which receiver each radio device was last heard on, so that its acks go back
// through the dongle within its radio range. Only devices whose MAC verified
// are noted, so the map is bounded by the registry.
import type { PortLink } from './port-link.ts';

export class DeviceRoutes {
  private readonly links = new Map<string, PortLink>();

  /** True when the device is new on this link (its config frame is due). */
  note(deviceId: string, link: PortLink): boolean {
    if (this.links.get(deviceId) === link) return false;
    this.links.set(deviceId, link);
    return true;
  }

  devicesOnLink(link: PortLink): string[] {
    const ids: string[] = [];
    for (const [id, l] of this.links) if (l === link) ids.push(id);
    return ids;
  }

  linkFor(deviceId: string): PortLink | undefined {
    return this.links.get(deviceId);
  }

  devicesOn(link: PortLink): number {
    return this.devicesOnLink(link).length;
  }
}
