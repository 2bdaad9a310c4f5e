// Test data: random bytes (incompressible, so nothing can pass by accident),
// their SHA-256, and files on disk for browsers to pick.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** n random bytes. */
export function randomData(n) {
  return randomBytes(n);
}

/** The hex SHA-256 of data. */
export function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

/** Writes data to dir/name and returns the path. */
export async function writeFile(dir, name, data) {
  const file = path.join(dir, name);
  await fs.writeFile(file, data);
  return file;
}
