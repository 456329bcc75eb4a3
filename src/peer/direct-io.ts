// Direct I/O (O_DIRECT) for a download's piece writes: the bytes go from our buffer to the device
// without a copy into the page cache, and the final fsync finds nothing left to write. On this
// machine a buffered GiB costs 0.5-2.4 CPU-s in the kernel (copy, then writeback, more under memory
// pressure), a direct one ~0.1 s; a download on two cores is short of exactly that CPU.
// Kept apart from storage.ts so the piece worker can import the rule without the rest.

/**
 * Offsets, lengths and buffer addresses of direct I/O must be multiples of the device's logical block
 * size: 512 bytes or 4 KiB on every disk we know, so 4 KiB covers both.
 */
export const DIRECT_IO_ALIGN = 4096
