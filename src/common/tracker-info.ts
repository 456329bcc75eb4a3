// Parses the trackers file: one tracker per line as "IP:PORT" or "IP PORT", optionally followed by
// the tracker's certificate fingerprint ("SHA256:<hex>"). Also accepts the older layout where the IP
// and the port stand on two consecutive lines. '#' starts a comment; blank lines are ignored.
// Pure: the caller reads the file.

import { PeershareError } from './errors.ts'

export interface TrackerAddress {
  /** 1-based position in the file: the tracker number. */
  no: number
  host: string
  port: number
  /** "SHA256:<64 hex>" when the file pins the tracker's certificate. */
  fingerprint?: string
  /** 1-based line of the file where the entry starts, for messages. */
  line: number
}

const IPV4 = String.raw`(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`
const HOST = String.raw`(${IPV4}|localhost|\[[0-9A-Fa-f:.]+\])`
const FPR = String.raw`(?:\s+(SHA256:[0-9A-Fa-f]{64}))?`
const ONE_LINE = new RegExp(String.raw`^${HOST}(?::|\s+)(\d{1,5})${FPR}$`)
const HOST_ONLY = new RegExp(String.raw`^${HOST}$`)
const PORT_ONLY = new RegExp(String.raw`^(\d{1,5})${FPR}$`)

export function parseTrackerInfo (text: string, fileName = 'trackers file'): TrackerAddress[] {
  const out: TrackerAddress[] = []
  const lines = text.split(/\r?\n/)
  let pendingHost: { host: string, line: number } | undefined
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1
    const content = lines[i]!.replace(/#.*$/, '').trim()
    if (content === '') continue
    const where = `${fileName}, line ${lineNo}`
    if (pendingHost !== undefined) {
      const m = PORT_ONLY.exec(content)
      if (m === null) throw new PeershareError('BAD_REQUEST', `${where}: expected the port of ${pendingHost.host} (line ${pendingHost.line}), got '${content.slice(0, 60)}'`)
      out.push(entry(out.length + 1, pendingHost.host, port(m[1]!, where), m[2], pendingHost.line))
      pendingHost = undefined
      continue
    }
    const one = ONE_LINE.exec(content)
    if (one !== null) {
      out.push(entry(out.length + 1, one[1]!, port(one[2]!, where), one[3], lineNo))
      continue
    }
    const host = HOST_ONLY.exec(content)
    if (host !== null) {
      pendingHost = { host: host[1]!, line: lineNo }
      continue
    }
    throw new PeershareError('BAD_REQUEST', `${where}: expected "IP:PORT" or "IP PORT", got '${content.slice(0, 60)}'`)
  }
  if (pendingHost !== undefined) {
    throw new PeershareError('BAD_REQUEST', `${fileName}, line ${pendingHost.line}: ${pendingHost.host} has no port (add ":PORT" or put the port on the next line)`)
  }
  if (out.length === 0) throw new PeershareError('BAD_REQUEST', `${fileName} lists no tracker: add a line such as 127.0.0.1:6000`)
  return out
}

function port (text: string, where: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new PeershareError('BAD_REQUEST', `${where}: port ${text} is not in 1-65535`)
  return n
}

function entry (no: number, rawHost: string, p: number, fpr: string | undefined, line: number): TrackerAddress {
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost
  const e: TrackerAddress = { no, host, port: p, line }
  if (fpr !== undefined) e.fingerprint = 'SHA256:' + fpr.slice(7).toLowerCase()
  return e
}
