#!/usr/bin/env node
// The `volstate` command (npx volstate serve|migrate|diagrams): runs the
// TypeScript sources through tsx, as `npm start` does.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
