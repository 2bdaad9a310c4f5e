// Where things are: the repository, the tusproxy binary the tests run, the
// artifacts directory CI keeps.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const e2eDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = path.resolve(e2eDir, '..');
export const browserExampleDir = path.join(repoDir, 'examples', 'browser');
export const artifactsDir = path.join(e2eDir, 'artifacts');

// The binary lives under node_modules/.cache (git-ignored with node_modules),
// built once per `npm test` by lib/build.js. TUSPROXY_E2E_BIN points the
// tests at another build instead.
export const tusproxyBin = process.env.TUSPROXY_E2E_BIN ||
  path.join(e2eDir, 'node_modules', '.cache', 'tusproxy-e2e', 'tusproxy');

// tus-js-client's browser build, served to pages in place of the CDN copy
// (the tests have no internet).
export const tusMinJs = path.join(e2eDir, 'node_modules', 'tus-js-client', 'dist', 'tus.min.js');
export const tusCdnUrl = 'https://cdn.jsdelivr.net/npm/tus-js-client@4.3.1/dist/tus.min.js';
