/**
 * Group types and their group specs, independent of HTTP (db/group-types.ts
 * holds the statements). Each operation answers what it did or throws the
 * Cinder fault that says why not.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import {
  changeGroupSpecs,
  deleteGroupType,
  findGroupType,
  insertGroupType,
  listGroupTypes,
  updateGroupType,
  type GroupTypeRow,
} from '../../db/group-types.ts';
import { transaction } from '../../db/tx.ts';
import { ApiError } from '../errors.ts';

export type { GroupTypeRow };

export class GroupTypeService {
  /** `defaultName`: VOLSTATE_DEFAULT_GROUP_TYPE (Cinder's default_group_type), unset by default as Cinder's. */
  constructor(
    private readonly sql: Sql,
    private readonly defaultName: string | undefined,
  ) {}

  list(admin: boolean, isPublic: boolean | undefined, sort: Parameters<typeof listGroupTypes>[3]): Promise<GroupTypeRow[]> {
    return listGroupTypes(this.sql, admin, isPublic, sort);
  }

  /** A type the caller may see, by id or name, else GroupTypeNotFound. */
  async visible(ref: string, admin: boolean): Promise<GroupTypeRow> {
    const found = await findGroupType(this.sql, ref, admin);
    if (!found) throw new ApiError('GroupTypeNotFound', { id: ref });
    return found;
  }

  /** GET /group_types/default: the configured one, else 404 as Cinder answers. */
  async defaultType(): Promise<GroupTypeRow> {
    const found = this.defaultName === undefined ? undefined : await findGroupType(this.sql, this.defaultName, true);
    if (!found) throw new ApiError('DefaultGroupTypeNotFound');
    return found;
  }

  async create(input: Omit<GroupTypeRow, 'id'>): Promise<GroupTypeRow> {
    const row: GroupTypeRow = { id: randomUUID(), ...input };
    if (!(await insertGroupType(this.sql, row))) throw new ApiError('GroupTypeExists', { name: row.name });
    return row;
  }

  async update(id: string, patch: { name?: string; description?: string | null; is_public?: boolean }): Promise<GroupTypeRow> {
    const updated = await updateGroupType(this.sql, id, patch);
    if (updated === 'taken') throw new ApiError('GroupTypeExists', { name: patch.name });
    if (!updated) throw new ApiError('GroupTypeNotFound', { id });
    return updated;
  }

  async delete(id: string): Promise<void> {
    const outcome = await transaction(this.sql, { rows: [] }, (tx) => deleteGroupType(tx, id));
    if (outcome === 'missing') throw new ApiError('GroupTypeNotFound', { id });
    if (outcome === 'in-use') throw new ApiError('GroupTypeInUse', { id });
  }

  async setSpecs(id: string, specs: Record<string, string | null>): Promise<void> {
    if ((await changeGroupSpecs(this.sql, id, { merge: specs })) === undefined) throw new ApiError('GroupTypeNotFound', { id });
  }

  async deleteSpec(id: string, key: string): Promise<void> {
    const out = await changeGroupSpecs(this.sql, id, { remove: key });
    if (out === undefined) throw new ApiError('GroupTypeNotFound', { id });
    if (out === null) throw new ApiError('GroupTypeSpecsNotFound', { id, key });
  }
}
