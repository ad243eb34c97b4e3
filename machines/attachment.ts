/**
 * The attachment machine. Pure: no I/O, no database, no HTTP.
 *
 * An attachment connects a volume to a server: `reserved` (created, no
 * connector yet) → `attaching` (a connector was given; the driver's
 * connection info is ready; waiting for the client's os-complete) →
 * `attached` → (`detaching`, legacy) → `detached`, the final state of a
 * deleted attachment. A reserved attachment may also be completed with no
 * connector at all (`reserved` → `attached`), as Cinder allows. Every
 * transition also changes its volume's counts in the same transaction
 * (ATTACHMENTS_CHANGED, see attachment-counts.ts), so the volume's status
 * follows its attachments with no blind write.
 *
 * No worker moves an attachment: the client does (Nova, or the cinder
 * CLI), and the driver calls (initialize/terminate connection) are made in
 * the request. Transient here: `attaching` and `detaching`, where a second
 * connect or complete would race the first (409, as Cinder's
 * ResourceConflict for duplicate connectors).
 */
import { setup } from 'xstate';
import { ATTACHMENT_BUCKETS, type AttachmentBucket, type AttachmentDeltas } from './attachment-counts.ts';
import {
  effectTable,
  guardTable,
  jsEffects,
  jsGuards,
  statusesOf,
  TRANSIENT,
  type ContextOf,
  type ContextSpec,
  type EventOf,
  type EventSpecs,
  type StateMeta,
} from './model.ts';
import { defineResource } from './resource.ts';

export const ATTACHMENT_STATES = [
  'reserved',
  'attaching',
  'attached',
  'detaching',
  'error_attaching',
  'error_detaching',
  'detached',
] as const;
export type AttachmentState = (typeof ATTACHMENT_STATES)[number];
export const ATTACHMENT_STATUSES = statusesOf(ATTACHMENT_STATES);

export const attachmentContext = {
  /** unused: attachments have no worker steps; kept so every state row reads the same */
  owner: 'text?',
} as const satisfies ContextSpec;
export type AttachmentContext = ContextOf<typeof attachmentContext>;

export const attachmentEvents = {
  CONNECT: {
    by: 'api',
    verb: 'connect',
    request: 'attachment update with a connector',
    params: {},
    doc: 'a connector was given (PUT /attachments/{id}, or create with one)',
  },
  CONNECT_FAILED: { by: 'link', params: {}, doc: 'the driver could not initialize the connection' },
  COMPLETE: {
    by: 'api',
    verb: 'complete',
    request: 'os-complete',
    params: {},
    doc: 'the server attached it (os-complete, legacy os-attach)',
  },
  BEGIN_DETACH: { by: 'api', verb: 'begin detaching', request: 'os-begin_detaching', params: {}, doc: 'legacy os-begin_detaching' },
  ROLL_DETACH: { by: 'api', verb: 'roll back detaching', request: 'os-roll_detaching', params: {}, doc: 'legacy os-roll_detaching' },
  DETACH: {
    by: 'api',
    verb: 'detach',
    request: 'attachment delete',
    params: {},
    doc: 'delete the attachment (DELETE /attachments/{id}, os-detach, os-unreserve)',
  },
  DETACH_FAILED: { by: 'link', params: {}, doc: 'the driver could not terminate the connection' },
} as const satisfies EventSpecs;
export type AttachmentEvent = EventOf<typeof attachmentEvents>;

type C = AttachmentContext;
type E = AttachmentEvent;

export const attachmentGuards = guardTable<C, E>()({});
export const attachmentEffects = effectTable<C, E>()({});

export const attachmentMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof attachmentGuards>(attachmentGuards),
  actions: jsEffects<C, E, typeof attachmentEffects>(attachmentEffects),
}).createMachine({
  id: 'attachment',
  initial: 'reserved',
  context: { owner: null },
  states: {
    // COMPLETE from reserved: a client attaching outside Nova (bare metal, a
    // container host) creates the attachment with no connector, or `{}`,
    // and completes it; real Cinder 21.3.1 accepts that (204, in-use).
    reserved: { on: { CONNECT: 'attaching', CONNECT_FAILED: 'error_attaching', COMPLETE: 'attached', DETACH: 'detached' } },
    attaching: {
      tags: [TRANSIENT],
      meta: { doc: 'connected; waiting for the server to attach', movedOnBy: 'the client: os-complete (COMPLETE), or delete (DETACH)' },
      on: { COMPLETE: 'attached', DETACH: 'detached' },
    },
    attached: { on: { BEGIN_DETACH: 'detaching', DETACH: 'detached' } },
    detaching: {
      tags: [TRANSIENT],
      meta: {
        doc: 'the server is detaching (legacy os-begin_detaching)',
        movedOnBy: 'the client: os-detach (DETACH), or os-roll_detaching (ROLL_DETACH)',
      },
      on: { ROLL_DETACH: 'attached', DETACH: 'detached', DETACH_FAILED: 'error_detaching' },
    },
    error_attaching: { on: { DETACH: 'detached' } },
    error_detaching: { on: { DETACH: 'detached' } },
    detached: { type: 'final' },
  },
});

export const attachmentModel = defineResource<C, E>({
  type: 'attachment',
  noun: 'attachment',
  machine: attachmentMachine,
  states: ATTACHMENT_STATES,
  statuses: ATTACHMENT_STATUSES,
  resettable: [],
  context: attachmentContext,
  events: attachmentEvents,
  guards: attachmentGuards,
  effects: attachmentEffects,
  releases: {},
});

/** The volume count an attachment in this state is counted in (none once detached). */
export const BUCKET_OF: Readonly<Record<AttachmentState, AttachmentBucket | null>> = {
  reserved: 'reserved',
  attaching: 'attaching',
  attached: 'attached',
  detaching: 'detaching',
  error_attaching: 'error',
  error_detaching: 'error',
  detached: null,
};

/** The ATTACHMENTS_CHANGED parameters for an attachment going from → to (from null: a new one). */
export function attachmentDeltas(from: string | null, to: string): AttachmentDeltas {
  const deltas = Object.fromEntries(ATTACHMENT_BUCKETS.map((b) => [`d_${b}`, 0])) as AttachmentDeltas;
  const was = from === null ? null : BUCKET_OF[from as AttachmentState];
  const is = BUCKET_OF[to as AttachmentState];
  if (was) deltas[`d_${was}`] -= 1;
  if (is) deltas[`d_${is}`] += 1;
  return deltas;
}
