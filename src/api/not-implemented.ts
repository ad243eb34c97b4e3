/**
 * What volstate does not implement, said as such. Cinder's routes and
 * actions that volstate has no part for answer Cinder's fault shape with a
 * message that names the feature ("volstate does not implement volume
 * migration"), not a bare 404 that reads like a wrong URL: a route is 404
 * (the resource does not exist here, which clients probing for a feature
 * read right), an action on a volume or a snapshot is 400.
 *
 * The list is the README's "not implemented" (docs/api.md); a test walks it.
 */
import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.ts';

/** Routes by method and path (as registered under /v3 and /v3/{project_id}) → what they are. */
export const ROUTES_NOT_IMPLEMENTED: Readonly<Record<string, string>> = {
  'POST /os-volume-manage': 'managing existing backend volumes (manage/unmanage)',
  'GET /manageable_volumes': 'managing existing backend volumes (manage/unmanage)',
  'GET /manageable_volumes/detail': 'managing existing backend volumes (manage/unmanage)',
  'POST /os-snapshot-manage': 'managing existing backend snapshots (manage/unmanage)',
  'GET /manageable_snapshots': 'managing existing backend snapshots (manage/unmanage)',
  'GET /manageable_snapshots/detail': 'managing existing backend snapshots (manage/unmanage)',
  'GET /clusters': 'clusters (its nodes are peers on one database, with no cluster to manage)',
  'GET /clusters/detail': 'clusters (its nodes are peers on one database, with no cluster to manage)',
  'GET /clusters/:name': 'clusters (its nodes are peers on one database, with no cluster to manage)',
  'PUT /clusters/enable': 'clusters (its nodes are peers on one database, with no cluster to manage)',
  'PUT /clusters/disable': 'clusters (its nodes are peers on one database, with no cluster to manage)',
  'POST /workers/cleanup': 'workers cleanup (every node recovers a dead node’s work by itself, see docs/active-active.md)',
  'GET /volumes/:id/encryption': 'volume encryption keys (it has no key manager; a type’s encryption is data)',
};

/** Volume and snapshot actions → what they are. */
export const VOLUME_ACTIONS_NOT_IMPLEMENTED: Readonly<Record<string, string>> = {
  'os-migrate_volume': 'volume migration',
  'os-migrate_volume_completion': 'volume migration',
  'os-volume_upload_image': 'upload to an image (no image service)',
  'os-unmanage': 'unmanaging a volume (manage/unmanage)',
  'os-extend_volume_completion': 'the extend completion of 3.71 (its newest microversion is 3.70)',
  'os-failover_replication': 'replication',
};
export const SNAPSHOT_ACTIONS_NOT_IMPLEMENTED: Readonly<Record<string, string>> = {
  'os-unmanage': 'unmanaging a snapshot (manage/unmanage)',
};
export const GROUP_ACTIONS_NOT_IMPLEMENTED: Readonly<Record<string, string>> = {
  enable_replication: 'group replication',
  disable_replication: 'group replication',
  failover_replication: 'group replication',
  list_replication_targets: 'group replication',
};

/** The error for an action volstate does not implement, if `name` is one. */
export function actionNotImplemented(table: Readonly<Record<string, string>>, name: string): ApiError | undefined {
  const what = Object.hasOwn(table, name) ? table[name] : undefined;
  return what === undefined ? undefined : new ApiError('ActionNotImplemented', { what, action: name });
}

export const notImplementedRoutes: FastifyPluginAsync = async (app) => {
  for (const [route, what] of Object.entries(ROUTES_NOT_IMPLEMENTED)) {
    const [method, url] = route.split(' ') as [string, string];
    app.route({
      method,
      url,
      handler: async () => {
        throw new ApiError('FeatureNotImplemented', { what });
      },
    });
  }
};
