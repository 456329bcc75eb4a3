// `--upload-limit <rate>`: bytes per second from a human rate. Decimal units as in "MB/s"
// (1 MB = 1,000,000 bytes), binary ones when asked for (KiB, MiB, GiB); "/s" is optional;
// 0 or "none" means no limit. Pure: the CLI reports a bad value as a usage error naming the option.

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30,
}

// above this a limit means nothing on any link we run on; also keeps the number an exact integer
const MAX_RATE_BPS = 1e12

/** Bytes per second, 0 for unlimited; undefined when the text is not a rate. */
export function parseRate (text: string): number | undefined {
  const t = text.trim().toLowerCase()
  if (t === 'none' || t === 'unlimited') return 0
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)(?:\/s)?$/.exec(t)
  if (m === null) return undefined
  const unit = UNITS[m[2]!]
  if (unit === undefined) return undefined
  const bps = Math.round(Number(m[1]) * unit)
  if (!Number.isFinite(bps) || bps > MAX_RATE_BPS) return undefined
  // a nonzero rate below one byte per second would round to "unlimited": refuse it instead
  if (bps === 0 && Number(m[1]) !== 0) return undefined
  return bps
}
