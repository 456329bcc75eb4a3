// `--size` of the demo and bench:download: bytes from "256M", "1G", "512KiB", "1.5G" (binary units).

/** Bytes; throws an Error whose message names the option and an example. */
export function parseSize (text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)i?B?$/i.exec(text)
  if (m === null) throw new Error(`--size ${text}: use e.g. 256M or 1G`)
  const bytes = Math.round(Number(m[1]) * ({ '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 } as Record<string, number>)[m[2]!.toUpperCase()]!)
  if (bytes < 1) throw new Error(`--size ${text}: must be at least 1 byte`)
  return bytes
}
