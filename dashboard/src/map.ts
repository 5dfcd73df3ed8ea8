// The city map: every site as a canvas-drawn dot (thousands stay smooth),
// alerting sites as pulsing DOM pins above them, district boundaries when
// the gateway has a boundary file, and a base map only if a tile URL is set.
import L from 'leaflet';
import type { Site } from '../../protocol/schemas.ts';
import { h } from './dom.ts';

export interface MapConfig {
  tileUrl: string | null;
  tileAttribution: string;
  districts: boolean;
}

const SEOUL: L.LatLngTuple = [37.5565, 126.99];
const SITE_STYLE = {
  store: { color: '#38bdf8', fillColor: '#38bdf8' },
  home: { color: '#a78bfa', fillColor: '#a78bfa' },
} as const;

export class CityMap {
  private readonly map: L.Map;
  private readonly renderer = L.canvas({ padding: 0.3 });
  private readonly siteLayer = L.layerGroup();
  private readonly alertLayer = L.layerGroup();
  private readonly pins = new Map<string, L.Marker>();

  constructor(el: HTMLElement, config: MapConfig, private readonly onPick: (siteId: string) => void) {
    this.map = L.map(el, { preferCanvas: true, zoomControl: true, attributionControl: true, minZoom: 9, maxZoom: 18 }).setView(SEOUL, 11);
    if (config.tileUrl) {
      L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 19, className: 'tiles-dark' }).addTo(this.map);
    }
    this.siteLayer.addTo(this.map);
    this.alertLayer.addTo(this.map);
    const legend = new L.Control({ position: 'bottomleft' });
    legend.onAdd = () => h('div', { class: 'legend' },
      h('span', { class: 'dot store' }), 'store', h('span', { class: 'dot home' }), 'home', h('span', { class: 'dot alerting' }), 'alerting');
    legend.addTo(this.map);
    // The grid may still be settling when the map is made: measure again once it has.
    new ResizeObserver(() => this.map.invalidateSize()).observe(el);
  }

  drawDistricts(collection: GeoJSON.FeatureCollection): void {
    L.geoJSON(collection, {
      style: { color: '#64748b', weight: 1.2, opacity: 0.9, fill: true, fillColor: '#1e293b', fillOpacity: 0.15 },
      interactive: false,
    }).addTo(this.map).bringToBack();
  }

  drawSites(sites: Iterable<Site>): void {
    this.siteLayer.clearLayers();
    for (const site of sites) {
      L.circleMarker([site.lat, site.lon], { renderer: this.renderer, radius: site.kind === 'store' ? 3 : 2.2, weight: 0, fillOpacity: 0.75, ...SITE_STYLE[site.kind] })
        .bindTooltip(() => h('span', {}, site.name, h('br'), site.district))
        .addTo(this.siteLayer);
    }
  }

  /** Pins exactly these sites as alerting; `selected` is drawn larger. */
  setAlerting(sites: Array<{ site: Site; label: string; top: boolean }>, selected: string | null): void {
    const keep = new Set(sites.map((s) => s.site.id));
    for (const [id, pin] of this.pins) if (!keep.has(id)) { pin.remove(); this.pins.delete(id); }
    for (const { site, label, top } of sites) {
      const cls = `alert-pin${top ? ' alert-pin-top' : ''}${site.id === selected ? ' alert-pin-selected' : ''}`;
      const icon = L.divIcon({ className: cls, iconSize: [22, 22], html: '' });
      let pin = this.pins.get(site.id);
      if (!pin) {
        pin = L.marker([site.lat, site.lon], { icon, zIndexOffset: 1000, keyboard: false, title: label })
          .on('click', () => this.onPick(site.id)).addTo(this.alertLayer);
        this.pins.set(site.id, pin);
      } else {
        pin.setIcon(icon);
      }
    }
  }

  focus(site: Site): void {
    this.map.flyTo([site.lat, site.lon], Math.max(this.map.getZoom(), 14), { duration: 0.6 });
  }
}
