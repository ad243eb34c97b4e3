-- The CHECK of the machines' states as a function, not an inline list: db/state-check.ts (written by npm run db:generate).
CREATE OR REPLACE FUNCTION volstate_valid_state(resource_type text, state text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN CASE resource_type
    WHEN 'volume' THEN state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'creating.parked', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'extending.backend', 'extending.parked', 'reverting.backend', 'reverting.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_extending', 'error_deleting', 'retyping.backend', 'retyping.parked', 'awaiting-transfer.offered', 'awaiting-transfer.parked', 'restoring-backup.backend', 'restoring-backup.parked', 'error_restoring', 'maintenance.parked', 'managing.parked', 'error_managing.parked', 'backing-up.parked', 'error_backing-up.parked', 'downloading.parked', 'uploading.parked', 'deleted')
    WHEN 'snapshot' THEN state IN ('creating.backend', 'creating.group', 'creating.parked', 'available', 'restoring', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'updating.parked', 'unmanaging.parked', 'backing-up.parked', 'deleted')
    WHEN 'attachment' THEN state IN ('reserved', 'attaching', 'attached', 'detaching', 'error_attaching', 'error_detaching', 'detached')
    WHEN 'backup' THEN state IN ('creating.backend', 'creating.import', 'available', 'restoring', 'deleting.backend', 'error', 'error_deleting', 'deleted')
    WHEN 'group' THEN state IN ('creating.backend', 'creating.parked', 'available', 'updating.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'deleted')
    WHEN 'group_snapshot' THEN state IN ('creating.backend', 'creating.parked', 'available', 'updating.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'deleted')
    ELSE false
  END;
END
$$;
--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_valid_state";
--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_valid_state" CHECK (volstate_valid_state("resource_states"."resource_type", "resource_states"."state"));
