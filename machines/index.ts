/**
 * The resource models, by `resource_states.resource_type`. Pure.
 */
import { attachmentModel } from './attachment.ts';
import { backupModel } from './backup.ts';
import { groupModel } from './group.ts';
import { groupSnapshotModel } from './group-snapshot.ts';
import { snapshotModel } from './snapshot.ts';
import { volumeModel } from './volume.ts';
import type { ResourceModel } from './resource.ts';

export const MODELS = {
  volume: volumeModel,
  snapshot: snapshotModel,
  attachment: attachmentModel,
  backup: backupModel,
  group: groupModel,
  group_snapshot: groupSnapshotModel,
} as const;
export type ResourceType = keyof typeof MODELS;
export const RESOURCE_TYPES = Object.keys(MODELS) as ResourceType[];

export { volumeModel, snapshotModel, attachmentModel, backupModel, groupModel, groupSnapshotModel };
export type { ResourceModel };

/**
 * The models with their context and event types erased: the one cast at
 * the model boundary. Each model's guards and effects take its machine's
 * own context and events (so they are not assignable to the erased
 * signature: function parameters are contravariant); the code that serves
 * every machine alike (the enforcer, the worker, refusals, the checker)
 * hands them exactly those, a row of that machine's type and an event its
 * event table declares (defineResource checked the tables against the
 * machine when the module loaded).
 */
const ERASED = MODELS as unknown as Readonly<Record<ResourceType, ResourceModel>>;

/** The model of a resource type, erased (see ERASED). */
export function modelOf(type: ResourceType): ResourceModel {
  return ERASED[type];
}

/** Whether a stored `resource_type` names a machine. */
export function isResourceType(type: string): type is ResourceType {
  return Object.hasOwn(MODELS, type);
}

import type { AttachmentContext, AttachmentEvent } from './attachment.ts';
import type { BackupContext, BackupEvent } from './backup.ts';
import type { GroupContext, GroupEvent } from './group.ts';
import type { GroupSnapshotContext, GroupSnapshotEvent } from './group-snapshot.ts';
import type { SnapshotContext, SnapshotEvent } from './snapshot.ts';
import type { VolumeContext, VolumeEvent } from './volume.ts';

/** Event and context types by resource type. */
export interface EventMap {
  volume: VolumeEvent;
  snapshot: SnapshotEvent;
  attachment: AttachmentEvent;
  backup: BackupEvent;
  group: GroupEvent;
  group_snapshot: GroupSnapshotEvent;
}
export interface ContextMap {
  volume: VolumeContext;
  snapshot: SnapshotContext;
  attachment: AttachmentContext;
  backup: BackupContext;
  group: GroupContext;
  group_snapshot: GroupSnapshotContext;
}
