// Bundles the dashboard (TypeScript and CSS, Leaflet included) into
// dist/dashboard, which the gateway serves under /assets. Run by `npm start`
// (prestart), by the test setup, or alone: `npm run build:dashboard`.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DASHBOARD_OUT_DIR = fileURLToPath(new URL('../dist/dashboard/', import.meta.url));

export async function buildDashboard(): Promise<Array<{ file: string; bytes: number }>> {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: ['dashboard/src/main.ts'],
    bundle: true,
    outdir: DASHBOARD_OUT_DIR,
    entryNames: '[name]',
    assetNames: '[name]',
    format: 'esm',
    // Current Chromium and Firefox; no older browser watches an alarm screen.
    target: ['chrome120', 'firefox120'],
    minify: true,
    sourcemap: 'linked',
    loader: { '.png': 'file', '.svg': 'file' },
    metafile: true,
    logLevel: 'warning',
  });
  return Object.entries(result.metafile.outputs)
    .filter(([file]) => !file.endsWith('.map'))
    .map(([file, out]) => ({ file: file.replace(/^dist\/dashboard\//, ''), bytes: out.bytes }));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const outputs = await buildDashboard();
  console.log(`dashboard built into dist/dashboard: ${outputs.map((o) => `${o.file} ${(o.bytes / 1024).toFixed(1)} KiB`).join(', ')}`);
}
