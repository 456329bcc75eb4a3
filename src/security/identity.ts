// The long-lived identity of a tracker or client: a key pair and a self-signed X.509 certificate in
// its data directory, created on first start and reused after. The identity is the certificate's
// SHA-256 fingerprint (Syncthing's model). Trust decisions about other parties live in tls.ts.

import { KeyObject, X509Certificate, createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto'
import { join } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createLog } from '../common/log.ts'
import { createFileExclusive, ensureDir, ensurePrivate, readSmallFile } from './key-files.ts'

const log = createLog('security:identity')

export const CERT_FILE = 'cert.pem'
export const KEY_FILE = 'key.pem'
export const FINGERPRINT_RE = /^SHA256:[0-9a-f]{64}$/

// ECDSA P-256: measured here as fast as Ed25519 for a full mutual TLS 1.3 handshake (1.7-1.8 ms vs
// 1.8-2.1 ms over loopback, the X25519 exchange dominates), and accepted by every TLS 1.3 stack,
// browsers and Go's included, which Ed25519 certificates are not. Ed25519 keys found on disk still load.
const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const
// The name carries no information on purpose: the fingerprint is the identity.
const SUBJECT = 'CN=peershare'
// RFC 5280 4.1.2.5: 99991231235959Z means "no well-defined expiration"; identities do not expire
// (peers pin them), and notBefore a day back tolerates clocks that are behind.
const NOT_AFTER = new Date('9999-12-31T23:59:59Z')
const CLOCK_SLACK_MS = 24 * 3600 * 1000

export interface Identity {
  certPem: string
  keyPem: string
  /** DER bytes of the certificate: what the fingerprint is computed over. */
  certDer: Buffer
  /** "SHA256:<64 lowercase hex>": the identity itself. */
  fingerprint: string
  /** First 8 hex chars of the fingerprint, for logs. */
  shortId: string
  certFile: string
  keyFile: string
  /** True when this call created the key or the certificate. */
  created: boolean
}

/** "SHA256:<hex>" of a certificate (a node X509Certificate, or its DER bytes). */
export function fingerprintOf (cert: X509Certificate | Buffer): string {
  const der = Buffer.isBuffer(cert) ? cert : cert.raw
  return 'SHA256:' + createHash('sha256').update(der).digest('hex')
}

/** 8 hex chars of a fingerprint, for logs (STYLE.md: never log the full identity). */
export function shortFingerprint (fingerprint: string): string {
  return fingerprint.startsWith('SHA256:') ? fingerprint.slice(7, 15) : fingerprint.slice(0, 8)
}

/** Normalises "SHA256:<hex>" (any case) or throws BAD_REQUEST. */
export function parseFingerprint (value: unknown): string {
  if (typeof value === 'string') {
    const m = /^SHA256:([0-9A-Fa-f]{64})$/.exec(value.trim())
    if (m !== null) return 'SHA256:' + m[1]!.toLowerCase()
  }
  const shown = typeof value === 'string' ? `'${value.slice(0, 80)}'` : typeof value
  throw new PeershareError('BAD_REQUEST', `${shown} is not a certificate fingerprint (want SHA256: and 64 hex digits)`)
}

/** The 32 raw bytes of a fingerprint (tickets carry it that way). */
export function fingerprintBytes (fingerprint: string): Buffer {
  return Buffer.from(parseFingerprint(fingerprint).slice(7), 'hex')
}

/**
 * Loads the identity kept in `dataDir`, creating it on first start. Refuses (BAD_REQUEST) a key or
 * certificate that cannot be read or that do not belong together: the identity never changes
 * silently, since trackers and peers pin it.
 */
export async function loadOrCreateIdentity (dataDir: string): Promise<Identity> {
  await ensureDir(dataDir)
  const keyFile = join(dataDir, KEY_FILE)
  const certFile = join(dataDir, CERT_FILE)
  let created = false
  let keyPem = await readSmallFile(keyFile)
  if (keyPem === undefined) {
    // key first, certificate second: a crash in between leaves a key without a certificate, which
    // nobody can have pinned yet, so a certificate is made for it on the next start (below)
    const fresh = await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])
    const pem = KeyObject.from(fresh.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string
    if (await createFileExclusive(keyFile, pem)) {
      created = true
      log.info('created identity key', { keyFile })
    }
    // another process may have won the race: use whatever key is on disk now
    keyPem = await readSmallFile(keyFile)
    if (keyPem === undefined) throw new PeershareError('UNAVAILABLE', `${keyFile} vanished while being created`)
  }
  await ensurePrivate(keyFile)
  const privateKey = parsePrivateKey(keyPem, keyFile)

  let certPem = await readSmallFile(certFile)
  if (certPem === undefined) {
    if (await createFileExclusive(certFile, await selfSignedCertificate(privateKey), 0o644)) {
      created = true
      log.info('created identity certificate', { certFile })
    }
    certPem = await readSmallFile(certFile)
    if (certPem === undefined) throw new PeershareError('UNAVAILABLE', `${certFile} vanished while being created`)
  }
  const cert = parseCertificate(certPem, certFile)
  if (!cert.checkPrivateKey(privateKey)) {
    throw new PeershareError('BAD_REQUEST',
      `${certFile} does not belong to the key in ${keyFile}: restore the pair from a backup, or delete both files ` +
      'to create a new identity (trackers and peers that knew the old one will then see a new certificate)')
  }
  const fingerprint = fingerprintOf(cert)
  return { certPem, keyPem, certDer: cert.raw, fingerprint, shortId: shortFingerprint(fingerprint), certFile, keyFile, created }
}

/** A fresh self-signed certificate for `privateKey` (PEM). Exported for tests that need throwaway identities. */
export async function selfSignedCertificate (privateKey: KeyObject): Promise<string> {
  // loaded only to create a certificate (first start): it costs ~100 ms of start-up and installs
  // the reflect-metadata polyfill globally, which every later start can do without
  const x509 = await import('@peculiar/x509')
  const algorithm = cryptoAlgorithmOf(privateKey)
  const keys = {
    privateKey: privateKey.toCryptoKey(algorithm.key, false, ['sign']),
    publicKey: createPublicKey(privateKey).toCryptoKey(algorithm.key, true, ['verify']),
  }
  const serial = randomBytes(16)
  serial[0]! &= 0x7f // a positive INTEGER (RFC 5280 4.1.2.2)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: SUBJECT,
    notBefore: new Date(Date.now() - CLOCK_SLACK_MS),
    notAfter: NOT_AFTER,
    signingAlgorithm: algorithm.signing,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    ],
  }, webcrypto)
  return cert.toString('pem') + '\n'
}

function cryptoAlgorithmOf (key: KeyObject): { key: webcrypto.EcKeyImportParams | webcrypto.Algorithm, signing: webcrypto.EcdsaParams | webcrypto.Algorithm } {
  if (key.asymmetricKeyType === 'ed25519') return { key: { name: 'Ed25519' }, signing: { name: 'Ed25519' } }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return { key: KEY_ALGORITHM, signing: SIGNING_ALGORITHM }
  }
  throw new PeershareError('BAD_REQUEST', `identity key type ${key.asymmetricKeyType ?? 'unknown'} is not supported (want ECDSA P-256 or Ed25519)`)
}

function parsePrivateKey (pem: string, file: string): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (err) {
    throw new PeershareError('BAD_REQUEST', `${file} is not a readable private key: restore it from a backup, or delete it and ${CERT_FILE} to create a new identity`, { cause: err })
  }
  cryptoAlgorithmOf(key) // refuses key types we do not use
  return key
}

function parseCertificate (pem: string, file: string): X509Certificate {
  try {
    return new X509Certificate(pem)
  } catch (err) {
    throw new PeershareError('BAD_REQUEST', `${file} is not a readable certificate: delete it to have a new one made for the existing key (a new identity)`, { cause: err })
  }
}
