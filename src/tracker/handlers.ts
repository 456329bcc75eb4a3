// One function per control operation: check the session → group rules (groups.ts) → store → result.
// Arguments arrive validated (protocol/control.ts); the connection's state (hello, session) and
// presence bookkeeping belong to server.ts, which hands them in as a HandlerContext.
// Every store write goes through withDeadline (STORE_UNAVAILABLE instead of hanging). Reads do not:
// the store answers them from memory (store.ts), and a deadline per read was ~8% of a tracker's CPU.

import { PeershareError } from '../common/errors.ts'
import type { ErrorCode } from '../common/errors.ts'
import { PROTOCOL_VERSION } from '../protocol/control.ts'
import type { Holder, Op, OpArgs, OpResults } from '../protocol/control.ts'
import { encodeFileMeta, fileId, pieceCount } from '../protocol/file-meta.ts'
import { hashPassword, verifyDummy, verifyPassword } from '../security/passwords.ts'
import { TICKET_TTL_MS, rawPublicKey, signTicket } from '../security/tickets.ts'
import type { TicketSigner } from '../security/tickets.ts'
import type { GroupAccess, GroupRecord, Store } from '../store/store.ts'
import { withDeadline } from './deadline.ts'
import { decideLeave, requireCanRequest, requireMemberAccess, requireOwner } from './groups.ts'
import type { HolderRegistry } from './holders.ts'
import type { EncodedResult, ReplyCache } from './reply-cache.ts'
import type { LoginThrottle } from './login-throttle.ts'
import { issueSession, revokeSession, verifySession } from './sessions.ts'
import type { TicketCache } from './ticket-cache.ts'

/** What a connection knows about its client. Mutated by hello, login, resume and logout. */
export interface ConnectionState {
  clientId: string | undefined
  peerAddr: string | undefined
  session: { userId: string, tokenHash: string } | undefined
  /** "SHA256:<hex>" of the client's TLS certificate (its identity and clientId); undefined over plaintext. */
  certFingerprint: string | undefined
  /** The client's IP address (failed logins are counted per address too). */
  remoteAddress?: string | undefined
}

export interface HandlerContext {
  store: Store
  trackerNo: number
  /** Signs download tickets (get_file); undefined: no tickets (insecure plaintext). */
  ticketSigner?: TicketSigner | undefined
  /** Lifetime of the tickets get_file signs (default TICKET_TTL_MS). */
  ticketTtlMs?: number
  /** Signed tickets reused while they have more than half their lifetime left; absent: sign every time. */
  tickets?: TicketCache
  /** Failed logins per account and address (login-throttle.ts); absent: no limit. */
  loginThrottle?: LoginThrottle
  conn: ConnectionState
  now (): number
  /** Records that this connection now holds the presence of its client (after login/resume). */
  claimPresence (userId: string): Promise<void>
  /** Drops the presence if this connection holds it (logout). */
  releasePresence (): Promise<void>
  /** Partial holders (running downloads), in memory; server.ts releases a client's holds with its presence. */
  holders: HolderRegistry
  /** Whether this connection holds its client's presence now (false once it closed or was superseded). */
  holdsPresence (): boolean
  /** Encoded list_files / list_groups replies, shared by the server's connections. */
  replies: ReplyCache
}

// list_files and list_groups answer with their result already encoded (reply-cache.ts)
type Handler<O extends Op> = (ctx: HandlerContext, args: OpArgs[O]) => Promise<OpResults[O] | EncodedResult>

const NOT_LOGGED_IN = 'not logged in: login <user_id> <passwd> first, or create_user'

/** The clientId of a TLS client: the hex of its certificate fingerprint (64 hex, what hello accepts). */
export function clientIdOf (fingerprint: string): string {
  return fingerprint.slice('SHA256:'.length)
}

/** The certificate fingerprint behind a clientId set by clientIdOf (over TLS every clientId is one). */
function fingerprintOfClient (clientId: string): string | undefined {
  return /^[0-9a-f]{64}$/.test(clientId) ? 'SHA256:' + clientId : undefined
}

function userOf (ctx: HandlerContext): string {
  if (ctx.conn.session === undefined) throw new PeershareError('NOT_LOGGED_IN', NOT_LOGGED_IN)
  return ctx.conn.session.userId
}

/** The client sharing on behalf of the logged-in user: hello's clientId. */
function sharerOf (ctx: HandlerContext): { userId: string, clientId: string } {
  return { userId: userOf(ctx), clientId: ctx.conn.clientId! }
}

/** Rewrites store errors of the given codes into messages that say what to do; other errors pass. */
async function explain<T> (work: Promise<T>, messages: Partial<Record<ErrorCode, string>>): Promise<T> {
  try {
    return await work
  } catch (err) {
    const message = err instanceof PeershareError ? messages[err.code] : undefined
    if (message !== undefined) throw new PeershareError((err as PeershareError).code, message, { cause: err })
    throw err
  }
}

function noGroup (groupId: string): PeershareError {
  return new PeershareError('NOT_FOUND', `group ${groupId} does not exist: list_groups shows the groups`)
}

/** The whole group record, members included: for the rules that need the member list (join, leave). */
async function groupOf (ctx: HandlerContext, groupId: string): Promise<GroupRecord> {
  const group = await ctx.store.getGroup(groupId)
  if (group === undefined) throw noGroup(groupId)
  return group
}

/** The owner and the user's standing, O(1) (no member list): for the membership and owner checks. */
async function accessOf (ctx: HandlerContext, groupId: string, userId: string): Promise<GroupAccess> {
  const access = await ctx.store.groupAccess(groupId, userId)
  if (access === undefined) throw noGroup(groupId)
  return access
}

const hello: Handler<'hello'> = async (ctx, args) => {
  // no await before the state change: frames pipelined right after hello already see it
  if (ctx.conn.clientId !== undefined) throw new PeershareError('PROTOCOL', 'hello was already received on this connection')
  if (args.version !== PROTOCOL_VERSION) {
    throw new PeershareError('PROTOCOL', `this tracker speaks protocol version ${PROTOCOL_VERSION}, the client ${args.version}: use matching versions`)
  }
  // over TLS the certificate is the client's identity: a clientId it merely claims could be anyone's,
  // and sessions, shares and presence are bound to the clientId
  const cert = ctx.conn.certFingerprint
  ctx.conn.clientId = cert === undefined ? args.clientId : clientIdOf(cert)
  ctx.conn.peerAddr = args.peerAddr
  const signer = ctx.ticketSigner
  if (cert === undefined || signer === undefined) return { version: PROTOCOL_VERSION, trackerNo: ctx.trackerNo }
  return { version: PROTOCOL_VERSION, trackerNo: ctx.trackerNo, ticketKey: rawPublicKey(signer.publicKey).toString('hex') }
}

const ping: Handler<'ping'> = async () => ({})

const createUser: Handler<'create_user'> = async (ctx, args) => {
  const passwordHash = await hashPassword(args.password)
  await explain(withDeadline((o) => ctx.store.createUser({ userId: args.userId, passwordHash, createdAt: ctx.now() }, o)), {
    EXISTS: `user ${args.userId} already exists: choose another user id, or login`,
  })
  return { userId: args.userId }
}

function requireLoggedOut (ctx: HandlerContext): void {
  const s = ctx.conn.session
  if (s !== undefined) throw new PeershareError('ALREADY_LOGGED_IN', `already logged in as ${s.userId}: logout first`)
}

const login: Handler<'login'> = async (ctx, args) => {
  requireLoggedOut(ctx)
  const address = ctx.conn.remoteAddress ?? 'unknown'
  ctx.loginThrottle?.check(args.userId, address, ctx.now()) // a locked-out guess costs no scrypt work
  const user = await ctx.store.getUser(args.userId)
  // unknown user and wrong password: same message, same time (verifyDummy costs one real verification)
  const ok = user === undefined ? await verifyDummy(args.password) : await verifyPassword(args.password, user.passwordHash)
  if (!ok) {
    ctx.loginThrottle?.failed(args.userId, address, ctx.now())
    throw new PeershareError('BAD_PASSWORD', 'wrong user id or password')
  }
  // guesses sent all at once were checked before the others failed: a lock now refuses even a right one
  ctx.loginThrottle?.check(args.userId, address, ctx.now())
  ctx.loginThrottle?.succeeded(args.userId)
  requireLoggedOut(ctx) // still true after the awaits: server.ts runs session ops one at a time
  const { token, record } = await withDeadline((o) => issueSession(ctx.store, args.userId, ctx.conn.clientId!, ctx.now(), o))
  ctx.conn.session = { userId: args.userId, tokenHash: record.tokenHash }
  // login does not reactivate shares: the client re-verifies its files, then calls reshare
  await ctx.claimPresence(args.userId)
  return { userId: args.userId, token }
}

const resume: Handler<'resume'> = async (ctx, args) => {
  requireLoggedOut(ctx)
  const record = await withDeadline((o) => verifySession(ctx.store, args.token, ctx.conn.clientId!, ctx.now(), o))
  ctx.conn.session = { userId: record.userId, tokenHash: record.tokenHash }
  await ctx.claimPresence(record.userId)
  return { userId: record.userId }
}

const logout: Handler<'logout'> = async (ctx) => {
  const sharer = sharerOf(ctx)
  const { tokenHash } = ctx.conn.session!
  // shares first: if the store fails midway the client is still logged in and can retry logout
  await withDeadline((o) => ctx.store.setSharesActive(sharer, false, o))
  await withDeadline((o) => revokeSession(ctx.store, tokenHash, o))
  ctx.conn.session = undefined
  await ctx.releasePresence()
  return { userId: sharer.userId }
}

const createGroup: Handler<'create_group'> = async (ctx, args) => {
  const userId = userOf(ctx)
  await explain(withDeadline((o) => ctx.store.createGroup(args.groupId, userId, ctx.now(), o)), {
    EXISTS: `group ${args.groupId} already exists: choose another group id, or join_group ${args.groupId}`,
  })
  return { groupId: args.groupId }
}

const joinGroup: Handler<'join_group'> = async (ctx, args) => {
  const userId = userOf(ctx)
  requireCanRequest(await groupOf(ctx, args.groupId), userId)
  // the store re-checks atomically: the group may go, or the user be accepted, meanwhile
  await explain(withDeadline((o) => ctx.store.addRequest(args.groupId, userId, ctx.now(), o)), {
    EXISTS: `you already asked to join ${args.groupId}: wait for the owner to accept`,
    ALREADY_MEMBER: `you are already a member of ${args.groupId}`,
    NOT_FOUND: `group ${args.groupId} does not exist: list_groups shows the groups`,
  })
  return { groupId: args.groupId, status: 'requested' }
}

const leaveGroup: Handler<'leave_group'> = async (ctx, args) => {
  const userId = userOf(ctx)
  decideLeave(await groupOf(ctx, args.groupId), userId) // NOT_MEMBER with a clear message
  const out = await withDeadline((o) => ctx.store.leaveGroup(args.groupId, userId, o))
  ctx.holders.releaseGroup(ctx.conn.clientId!, args.groupId)
  return { groupId: args.groupId, newOwner: out.newOwner, groupDeleted: out.groupDeleted }
}

const listRequests: Handler<'list_requests'> = async (ctx, args) => {
  const userId = userOf(ctx)
  requireOwner(await accessOf(ctx, args.groupId, userId), userId)
  const requests = await ctx.store.listRequests(args.groupId)
  return { groupId: args.groupId, requests: requests.map((r) => ({ userId: r.userId, requestedAt: r.requestedAt })) }
}

const acceptRequest: Handler<'accept_request'> = async (ctx, args) => {
  const userId = userOf(ctx)
  requireOwner(await accessOf(ctx, args.groupId, userId), userId)
  await explain(withDeadline((o) => ctx.store.acceptRequest(args.groupId, args.userId, ctx.now(), o)), {
    NOT_FOUND: `${args.userId} has not asked to join ${args.groupId}: list_requests ${args.groupId} shows who has`,
  })
  return { groupId: args.groupId, userId: args.userId }
}

const rejectRequest: Handler<'reject_request'> = async (ctx, args) => {
  const userId = userOf(ctx)
  requireOwner(await accessOf(ctx, args.groupId, userId), userId)
  await explain(withDeadline((o) => ctx.store.rejectRequest(args.groupId, args.userId, o)), {
    NOT_FOUND: `${args.userId} has not asked to join ${args.groupId}: list_requests ${args.groupId} shows who has`,
  })
  return { groupId: args.groupId, userId: args.userId }
}

const listGroups: Handler<'list_groups'> = async (ctx) => {
  const userId = userOf(ctx)
  const groups = await ctx.store.listGroups()
  const mine = await ctx.store.membershipsOf(userId)
  return ctx.replies.listGroups(groups, userId, mine)
}

const listFiles: Handler<'list_files'> = async (ctx, args) => {
  const userId = userOf(ctx)
  requireMemberAccess(await accessOf(ctx, args.groupId, userId))
  const files = await ctx.store.listFiles(args.groupId)
  return await ctx.replies.listFiles(args.groupId, files, ctx.store.presenceVersion(), (clientIds) => ctx.store.getPresence(clientIds))
}

const uploadFile: Handler<'upload_file'> = async (ctx, args) => {
  const sharer = sharerOf(ctx)
  requireMemberAccess(await accessOf(ctx, args.groupId, sharer.userId))
  const id = fileId(args.meta)
  const existing = await ctx.store.getFile(args.groupId, args.meta.name)
  const alreadyShared = existing !== undefined && existing.fileId === id &&
    existing.sharers.some((s) => s.userId === sharer.userId && s.clientId === sharer.clientId)
  await explain(withDeadline((o) => ctx.store.addShare(args.groupId, id, args.meta, sharer, ctx.now(), o)), {
    EXISTS: `a different file named ${args.meta.name} is already shared in ${args.groupId}: rename yours to share it`,
  })
  ctx.holders.release(sharer.clientId, args.groupId, id) // a finished download is a full sharer now
  return {
    groupId: args.groupId,
    name: args.meta.name,
    fileId: id,
    size: args.meta.size,
    pieces: pieceCount(args.meta.size, args.meta.pieceBytes),
    alreadyShared,
  }
}

const stopShare: Handler<'stop_share'> = async (ctx, args) => {
  const sharer = sharerOf(ctx)
  requireMemberAccess(await accessOf(ctx, args.groupId, sharer.userId))
  const out = await explain(withDeadline((o) => ctx.store.removeShare(args.groupId, args.fileName, sharer, o)), {
    NOT_FOUND: `you do not share ${args.fileName} in ${args.groupId}`,
  })
  return { groupId: args.groupId, name: args.fileName, fileRemoved: out.fileRemoved }
}

const reshare: Handler<'reshare'> = async (ctx, args) => {
  const sharer = sharerOf(ctx)
  // shares in groups the user has left were removed with the membership: they come back as `gone`
  return await withDeadline((o) => ctx.store.reactivateShares(sharer, args.shares, o))
}

const getFile: Handler<'get_file'> = async (ctx, args) => {
  const sharer = sharerOf(ctx)
  requireMemberAccess(await accessOf(ctx, args.groupId, sharer.userId))
  const file = await ctx.store.getFile(args.groupId, args.fileName)
  if (file === undefined) {
    throw new PeershareError('NOT_FOUND', `no file named ${args.fileName} in ${args.groupId}: list_files ${args.groupId} shows the files`)
  }
  const candidates = file.sharers.filter((s) => s.active && s.clientId !== sharer.clientId)
  const presence = await ctx.store.getPresence(candidates.map((s) => s.clientId))
  const holders: Holder[] = []
  for (const s of candidates) {
    const p = presence.get(s.clientId)
    if (p !== undefined && p.userId === s.userId) holders.push(holderOf(ctx, s.userId, s.clientId, p.peerAddr, true))
  }
  const full = new Set(candidates.map((s) => s.clientId))
  for (const h of ctx.holders.holdersOf(args.groupId, file.fileId)) {
    if (h.clientId !== sharer.clientId && !full.has(h.clientId)) holders.push(holderOf(ctx, h.userId, h.clientId, h.peerAddr, false))
  }
  const out: OpResults['get_file'] = { groupId: args.groupId, fileId: file.fileId, meta: encodeFileMeta(file.meta), holders }
  const requester = ctx.conn.certFingerprint
  if (requester !== undefined && ctx.ticketSigner !== undefined) {
    // one ticket for every holder: it names the requester's certificate, and each holder checks that
    // against the certificate of the connection presenting it. Membership was checked above, on this
    // request: the cache only saves the signature (ticket-cache.ts), it never grants anything.
    const signer = ctx.ticketSigner
    const sign = (expiresAt: number): string =>
      signTicket({ requester, fileId: file.fileId, groupId: args.groupId, expiresAt }, signer).toString('base64')
    const now = ctx.now()
    const ttlMs = ctx.ticketTtlMs ?? TICKET_TTL_MS
    const { ticket, expiresAt } = ctx.tickets === undefined
      ? { ticket: sign(now + ttlMs), expiresAt: now + ttlMs }
      : ctx.tickets.getOrSign({ keyId: signer.keyId, requester, fileId: file.fileId, groupId: args.groupId }, now, ttlMs, sign)
    out.ticket = ticket
    out.ticketExpiresAt = expiresAt
  }
  return out
}

/** A holder as get_file returns it: over TLS with its certificate fingerprint, which the downloader pins. */
function holderOf (ctx: HandlerContext, userId: string, clientId: string, peerAddr: string, complete: boolean): Holder {
  const holder: Holder = { userId, peerAddr, complete }
  const fingerprint = ctx.conn.certFingerprint === undefined ? undefined : fingerprintOfClient(clientId)
  if (fingerprint !== undefined) holder.fingerprint = fingerprint
  return holder
}

const hold: Handler<'hold'> = async (ctx, args) => {
  const sharer = sharerOf(ctx)
  requireMemberAccess(await accessOf(ctx, args.groupId, sharer.userId))
  // the Store looks files up by name; hold is said once per download (and after a failover), so a scan is fine
  const files = await ctx.store.listFiles(args.groupId)
  if (!files.some((f) => f.fileId === args.fileId)) {
    throw new PeershareError('NOT_FOUND', `no file with id ${args.fileId.slice(0, 8)}… in ${args.groupId}: it is no longer shared there`)
  }
  // the connection may have closed (its holds released) during the awaits: a hold now would outlive it
  if (!ctx.holdsPresence()) throw new PeershareError('UNAVAILABLE', 'this connection is closing: hold again on the next one')
  ctx.holders.hold(args.groupId, args.fileId, { clientId: sharer.clientId, userId: sharer.userId, peerAddr: ctx.conn.peerAddr! })
  return { groupId: args.groupId, fileId: args.fileId }
}

export const handlers: { [O in Op]: Handler<O> } = {
  hello,
  ping,
  create_user: createUser,
  login,
  resume,
  logout,
  create_group: createGroup,
  join_group: joinGroup,
  leave_group: leaveGroup,
  list_requests: listRequests,
  accept_request: acceptRequest,
  reject_request: rejectRequest,
  list_groups: listGroups,
  list_files: listFiles,
  upload_file: uploadFile,
  stop_share: stopShare,
  reshare,
  get_file: getFile,
  hold,
}

/** Operations that change the connection's session: server.ts runs them one at a time per connection. */
export const SESSION_OPS: ReadonlySet<Op> = new Set(['login', 'resume', 'logout'])
