// The tracker's ticket signing key (Ed25519), kept in its data directory (mode 0600), created on
// first start and reused after, so tickets stay valid across a tracker restart.

import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { join } from 'node:path'
import { PeershareError } from '../common/errors.ts'
import { createFileExclusive, ensureDir, ensurePrivate, readSmallFile } from './key-files.ts'
import { signerFromPrivateKey } from './tickets.ts'
import type { TicketSigner } from './tickets.ts'

export const TICKET_KEY_FILE = 'ticket-key.pem'

export async function loadOrCreateTicketKey (dataDir: string): Promise<TicketSigner & { file: string, created: boolean }> {
  await ensureDir(dataDir)
  const file = join(dataDir, TICKET_KEY_FILE)
  let pem = await readSmallFile(file)
  let created = false
  if (pem === undefined) {
    const fresh = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    created = await createFileExclusive(file, fresh)
    pem = await readSmallFile(file) // another process may have won the race: its key is the key
    if (pem === undefined) throw new PeershareError('UNAVAILABLE', `${file} vanished while being created`)
  }
  await ensurePrivate(file)
  let signer: TicketSigner
  try {
    signer = signerFromPrivateKey(createPrivateKey(pem))
  } catch (err) {
    throw new PeershareError('BAD_REQUEST',
      `${file} is not an Ed25519 private key: restore it, or delete it to make a new one (tickets already issued then stop verifying)`, { cause: err })
  }
  return { ...signer, file, created }
}
