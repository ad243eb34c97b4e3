/**
 * Volume types, their extra specs and access, independent of HTTP
 * (db/volume-types.ts holds the statements). Each operation answers what
 * it did or throws the Cinder fault that says why not. The default type
 * keeps its name and cannot be deleted; a type a live volume uses cannot
 * be deleted either (checked in the delete's transaction).
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { transaction } from '../../db/tx.ts';
import {
  changeEncryption,
  changeExtraSpecs,
  DEFAULT_TYPE,
  encryptionOf,
  listProjectDefaults,
  projectDefaultType,
  setProjectDefault,
  unsetProjectDefault,
  type ProjectDefault,
  type EncryptionFields,
  type EncryptionRow,
  deleteType,
  findType,
  insertType,
  listTypes,
  setTypeAccess,
  typeAccess,
  updateType,
  type VolumeTypeRow,
} from '../../db/volume-types.ts';
import { ApiError } from '../errors.ts';

export { DEFAULT_TYPE, type ProjectDefault, type EncryptionFields, type EncryptionRow, type VolumeTypeRow };

export interface TypePatch {
  name?: string;
  description?: string | null;
  is_public?: boolean;
}

export class VolumeTypeService {
  constructor(private readonly sql: Sql) {}

  /**
   * Types visible to `projectId` (undefined: every type, as an admin sees
   * them), public ones and private ones shared with it; `isPublic` narrows.
   */
  list(projectId: string | undefined, isPublic: boolean | undefined): Promise<VolumeTypeRow[]> {
    return listTypes(this.sql, projectId, isPublic);
  }

  /** A type `projectId` may see, by id or name (`default`: the default type), else VolumeTypeNotFound. */
  async visible(ref: string, projectId: string | undefined): Promise<VolumeTypeRow> {
    // `default`: the project's own default (3.62), else __DEFAULT__.
    const found =
      ref === 'default'
        ? ((projectId === undefined ? undefined : await projectDefaultType(this.sql, projectId)) ??
          (await findType(this.sql, DEFAULT_TYPE, undefined)))
        : await findType(this.sql, ref, projectId);
    if (!found) throw new ApiError('VolumeTypeNotFound', { id: ref });
    return found;
  }

  /** A type an admin changes: by id only (a UUID, checked by the caller). */
  async byId(id: string): Promise<VolumeTypeRow> {
    const found = await findType(this.sql, id, undefined);
    if (!found) throw new ApiError('VolumeTypeNotFound', { id });
    return found;
  }

  /** VolumeTypeExists if the name is taken. */
  async create(input: Omit<VolumeTypeRow, 'id' | 'qos_specs_id' | 'encrypted'>): Promise<VolumeTypeRow> {
    const row: VolumeTypeRow = { id: randomUUID(), ...input, qos_specs_id: null, encrypted: false };
    if (!(await insertType(this.sql, row))) throw new ApiError('VolumeTypeExists', { name: row.name });
    return row;
  }

  async update(current: VolumeTypeRow, patch: TypePatch): Promise<VolumeTypeRow> {
    if (current.name === DEFAULT_TYPE && patch.name !== undefined && patch.name !== DEFAULT_TYPE) {
      throw new ApiError('InvalidInput', { reason: `the default type ${DEFAULT_TYPE} keeps its name.` });
    }
    const updated = await transaction(this.sql, { rows: [] }, (tx) => updateType(tx, current.id, patch));
    if (updated === 'taken') throw new ApiError('VolumeTypeExists', { name: patch.name });
    if (!updated) throw new ApiError('VolumeTypeNotFound', { id: current.id });
    return updated;
  }

  async delete(current: VolumeTypeRow): Promise<void> {
    if (current.name === DEFAULT_TYPE)
      throw new ApiError('InvalidVolumeType', { reason: `the default type ${DEFAULT_TYPE} cannot be deleted` });
    const outcome = await transaction(this.sql, { rows: [] }, (tx) => deleteType(tx, current.id));
    if (outcome === 'missing') throw new ApiError('VolumeTypeNotFound', { id: current.id });
    if (outcome === 'in-use') throw new ApiError('VolumeTypeInUse', { id: current.id });
    if (outcome === 'default')
      throw new ApiError('InvalidVolumeType', {
        reason: `type ${current.id} is a project's default type: unset that default (default-types) first`,
      });
  }

  async setExtraSpecs(id: string, specs: Record<string, string>): Promise<void> {
    if ((await changeExtraSpecs(this.sql, id, { merge: specs })) === undefined) throw new ApiError('VolumeTypeNotFound', { id });
  }

  async deleteExtraSpec(id: string, key: string): Promise<void> {
    const out = await changeExtraSpecs(this.sql, id, { remove: key });
    if (out === undefined) throw new ApiError('VolumeTypeNotFound', { id });
    if (out === null) throw new ApiError('ExtraSpecNotFound', { id, key });
  }

  /** The projects a private type is shared with (NoAccessList for a public one). */
  async access(type: VolumeTypeRow): Promise<string[]> {
    if (type.is_public) throw new ApiError('NoAccessList', { id: type.id });
    return typeAccess(this.sql, type.id);
  }

  /** Give (grant) or take a project's access to a private type. */
  async setAccess(type: VolumeTypeRow, project: string, grant: boolean): Promise<void> {
    if (type.is_public)
      throw new ApiError('InvalidVolumeType', { reason: 'type access modification is not applicable to a public volume type' });
    const changed = await setTypeAccess(this.sql, type.id, project, grant);
    if (!changed && grant) throw new ApiError('VolumeTypeAccessExists', { id: type.id, project });
    if (!changed) throw new ApiError('VolumeTypeAccessNotFound', { id: type.id, project });
  }

  /** The type's encryption, if any. */
  encryption(id: string): Promise<EncryptionRow | undefined> {
    return encryptionOf(this.sql, id);
  }

  /**
   * Create, change or remove a type's encryption: refused while a live
   * volume has the type (in any project), as Cinder refuses it, but judged
   * in one transaction with the type locked.
   */
  async changeEncryption(
    id: string,
    change: { create: EncryptionFields } | { update: Partial<EncryptionFields> } | { delete: true },
  ): Promise<EncryptionRow | undefined> {
    const verb = 'create' in change ? 'create' : 'update' in change ? 'update' : 'delete';
    const what = 'create' in change ? { create: { ...change.create, encryption_id: randomUUID() } } : change;
    const out = await transaction(this.sql, { rows: [] }, (tx) => changeEncryption(tx, id, what));
    if (out === 'missing-type') throw new ApiError('VolumeTypeNotFound', { id });
    if (out === 'in-use') throw new ApiError('VolumeTypeEncryptionInUse', { verb, id });
    if (out === 'exists') throw new ApiError('VolumeTypeEncryptionExists', { id });
    if (out === 'none') throw new ApiError('VolumeTypeEncryptionNotFound', { id });
    return out === 'deleted' ? undefined : out;
  }

  /** Project default types (3.62): one project's, or every project's. */
  defaults(projectId?: string): Promise<ProjectDefault[]> {
    return listProjectDefaults(this.sql, projectId);
  }

  /** Make a type (by id or name, any an admin sees) a project's default. */
  async setDefault(projectId: string, ref: string): Promise<ProjectDefault> {
    const type = await findType(this.sql, ref, undefined);
    if (!type) throw new ApiError('VolumeTypeNotFound', { id: ref });
    try {
      return await setProjectDefault(this.sql, projectId, type.id);
    } catch (err) {
      // The type was deleted between the lookup and the insert (its foreign key).
      if ((err as { code?: string }).code === '23503') throw new ApiError('VolumeTypeNotFound', { id: ref });
      throw err;
    }
  }

  async unsetDefault(projectId: string): Promise<void> {
    if (!(await unsetProjectDefault(this.sql, projectId))) throw new ApiError('VolumeTypeProjectDefaultNotFound', { project: projectId });
  }
}
