/**
 * The resource models, by `resource_states.resource_type`. Pure.
 */
import { attachmentModel } from './attachment.ts';
import { snapshotModel } from './snapshot.ts';
import { volumeModel } from './volume.ts';

export const MODELS = { volume: volumeModel, snapshot: snapshotModel, attachment: attachmentModel } as const;
export type ResourceType = keyof typeof MODELS;
export const RESOURCE_TYPES = Object.keys(MODELS) as ResourceType[];

export { volumeModel, snapshotModel, attachmentModel };
export type { ResourceModel } from './resource.ts';

import type { AttachmentContext, AttachmentEvent } from './attachment.ts';
import type { SnapshotContext, SnapshotEvent } from './snapshot.ts';
import type { VolumeContext, VolumeEvent } from './volume.ts';

/** Event and context types by resource type. */
export interface EventMap {
  volume: VolumeEvent;
  snapshot: SnapshotEvent;
  attachment: AttachmentEvent;
}
export interface ContextMap {
  volume: VolumeContext;
  snapshot: SnapshotContext;
  attachment: AttachmentContext;
}
