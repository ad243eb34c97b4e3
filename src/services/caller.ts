/**
 * Who is asking: resolved by the API from the request (auth mode, token,
 * URL), used by the services for scoping and for the history's actor.
 */
export interface Caller {
  userId: string;
  projectId: string;
  isAdmin: boolean;
  /** x-openstack-request-id of the request, recorded in the history */
  requestId: string | undefined;
}

/** The history's `actor` for a client. */
export function actorOf(caller: Caller): string {
  return `${caller.userId}:${caller.projectId}`;
}

/**
 * The project to restrict a lookup by id to: none for an admin (an admin
 * may act on any project's resources by id, as in Cinder), the caller's
 * own otherwise (another project's resource answers 404, never 403).
 */
export function scopeOf(caller: Caller): string | undefined {
  return caller.isAdmin ? undefined : caller.projectId;
}
