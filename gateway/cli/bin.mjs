#!/usr/bin/env node
// The `safehaven` bin: loads the TypeScript CLI through tsx's loader, so the
// installed command and `npm run safehaven` run the same code without a build step.
import { register } from 'tsx/esm/api';

register();
await import('./safehaven.ts');
