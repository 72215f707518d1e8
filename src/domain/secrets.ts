import { createHash, randomBytes } from 'node:crypto';

/** A secret as stored: SHA-256, hex. Secrets are random and long, so a plain hash is enough (no password stretching). */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Compares secrets in time that does not depend on where they differ (only on their length, which is no secret). */
export function safeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** `bytes` random bytes as base64url: 32 bytes give 43 characters of A-Z, a-z, 0-9, '-' and '_'. */
export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** A short random id of lower-case letters and digits. */
export function newShortId(length = 12): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const raw = randomBytes(length);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[(raw[i] as number) % alphabet.length];
  return out;
}
