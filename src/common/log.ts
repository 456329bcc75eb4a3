// Structured logging: one JSON line per event on stderr. Quiet by default (warn and error only);
// --verbose or PEERSHARE_LOG=debug|info turns on more. Stdout belongs to the shell and --json mode.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'
const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

let threshold = levelFromEnv(process.env.PEERSHARE_LOG)

function levelFromEnv (value: string | undefined): number {
  if (value !== undefined && value in LEVELS) return LEVELS[value as LogLevel]
  return LEVELS.warn
}

export function setLogLevel (level: LogLevel): void {
  threshold = LEVELS[level]
}

export interface Log {
  debug (msg: string, fields?: Record<string, unknown>): void
  info (msg: string, fields?: Record<string, unknown>): void
  warn (msg: string, fields?: Record<string, unknown>): void
  error (msg: string, fields?: Record<string, unknown>): void
  enabled (level: LogLevel): boolean
}

export function createLog (component: string): Log {
  const emit = (level: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (LEVELS[level] < threshold) return
    const line: Record<string, unknown> = { t: new Date().toISOString(), level, component, msg }
    if (fields !== undefined) {
      for (const [k, v] of Object.entries(fields)) line[k] = v instanceof Error ? describeError(v) : v
    }
    process.stderr.write(JSON.stringify(line) + '\n')
  }
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    enabled: (level) => LEVELS[level] >= threshold,
  }
}

function describeError (err: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: err.message }
  if ('code' in err) out.code = err.code
  if (threshold <= LEVELS.debug && err.stack !== undefined) out.stack = err.stack
  if (err.cause instanceof Error) out.cause = describeError(err.cause)
  return out
}
