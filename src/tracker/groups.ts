// Pure group rules (ARCHITECTURE.md "Commands"): the creator owns the group; joining is a request
// the owner accepts or rejects; only members list, share into or download from a group; when the
// owner leaves, the member who joined earliest becomes owner; a group left empty is deleted.
// No I/O: stores and handlers pass the facts in and act on the decision.

import { PeershareError } from '../common/errors.ts'
import type { GroupAccess, GroupRecord, LeaveOutcome, Member } from '../store/store.ts'

export type Role = 'owner' | 'member' | 'pending' | 'none'

export function roleOf (group: Pick<GroupRecord, 'owner' | 'members'>, userId: string, pending: boolean): Role {
  if (group.owner === userId) return 'owner'
  if (group.members.some((m) => m.userId === userId)) return 'member'
  return pending ? 'pending' : 'none'
}

export function isMember (group: Pick<GroupRecord, 'members'>, userId: string): boolean {
  return group.members.some((m) => m.userId === userId)
}

/** Throws NOT_MEMBER unless the user may see and share into the group. */
export function requireMember (group: Pick<GroupRecord, 'groupId' | 'members'>, userId: string): void {
  requireMemberAccess({ groupId: group.groupId, member: isMember(group, userId) })
}

/** requireMember for a caller that has the user's standing already (Store.groupAccess, O(1)). */
export function requireMemberAccess (access: Pick<GroupAccess, 'groupId' | 'member'>): void {
  if (!access.member) {
    throw new PeershareError('NOT_MEMBER', `you are not a member of ${access.groupId}: join_group ${access.groupId} and wait for the owner to accept`)
  }
}

/** Throws NOT_OWNER unless the user owns the group (list, accept or reject requests). */
export function requireOwner (group: Pick<GroupRecord, 'groupId' | 'owner'>, userId: string): void {
  if (group.owner !== userId) {
    throw new PeershareError('NOT_OWNER', `only the owner of ${group.groupId} (${group.owner}) can do that`)
  }
}

/** Throws unless the user may ask to join: not already a member. */
export function requireCanRequest (group: Pick<GroupRecord, 'groupId' | 'members'>, userId: string): void {
  if (isMember(group, userId)) {
    throw new PeershareError('ALREADY_MEMBER', `you are already a member of ${group.groupId}`)
  }
}

/** The earliest joiner among the members other than the leaver (ties: smaller user id). */
export function nextOwner (members: readonly Member[], leaving: string): string | null {
  let best: Member | undefined
  for (const m of members) {
    if (m.userId === leaving) continue
    if (best === undefined || m.joinedAt < best.joinedAt || (m.joinedAt === best.joinedAt && m.userId < best.userId)) best = m
  }
  return best === undefined ? null : best.userId
}

/** What happens when `userId` leaves. Throws NOT_MEMBER when it is not a member. */
export function decideLeave (group: GroupRecord, userId: string): LeaveOutcome {
  if (!isMember(group, userId)) throw new PeershareError('NOT_MEMBER', `you are not a member of ${group.groupId}`)
  const heir = nextOwner(group.members, userId)
  if (heir === null) return { newOwner: null, groupDeleted: true }
  return { newOwner: group.owner === userId ? heir : null, groupDeleted: false }
}
