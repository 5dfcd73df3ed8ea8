// vitest globalSetup: the dashboard bundle, fresh for every run.
import { buildDashboard } from '../../dashboard/build.ts';

export default async function setup(): Promise<void> {
  await buildDashboard();
}
