// Throwaway TLS identities for tests, made in memory (no data dir): a P-256 key and a self-signed
// certificate, shaped like security/identity.ts's Identity.

import { X509Certificate, generateKeyPairSync } from 'node:crypto'
import { fingerprintOf, selfSignedCertificate, shortFingerprint } from '../../src/security/identity.ts'
import type { Identity } from '../../src/security/identity.ts'

export async function testIdentity (): Promise<Identity> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const certPem = await selfSignedCertificate(privateKey)
  const cert = new X509Certificate(certPem)
  const fingerprint = fingerprintOf(cert)
  return {
    certPem,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certDer: cert.raw,
    fingerprint,
    shortId: shortFingerprint(fingerprint),
    certFile: '(memory)',
    keyFile: '(memory)',
    created: true,
  }
}

/** The identity a test names `key`: made on first use, the same one after (a client that reconnects). */
const named = new Map<string, Promise<Identity>>()
export function namedIdentity (key: string): Promise<Identity> {
  let id = named.get(key)
  if (id === undefined) {
    id = testIdentity()
    named.set(key, id)
  }
  return id
}

/** Makes `key` name an existing identity (a RawClient's clientId names the certificate it used). */
export function nameIdentity (key: string, identity: Identity): void {
  if (!named.has(key)) named.set(key, Promise.resolve(identity))
}
