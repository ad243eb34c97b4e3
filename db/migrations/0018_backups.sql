CREATE TABLE "backups" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text,
	"volume_id" uuid NOT NULL,
	"snapshot_id" uuid,
	"parent_id" uuid,
	"name" text,
	"description" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"container" text,
	"availability_zone" text,
	"service_metadata" text,
	"object_count" integer DEFAULT 0 NOT NULL,
	"progress" smallint DEFAULT 0 NOT NULL,
	"fail_reason" text,
	"data_timestamp" timestamp with time zone DEFAULT now() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "leases" DROP CONSTRAINT "leases_kind";--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_valid_state";--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_counts";--> statement-breakpoint
DROP INDEX "resource_states_pending";--> statement-breakpoint
ALTER TABLE "resource_states" ADD COLUMN "backups" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "backup_id" uuid;--> statement-breakpoint
-- By hand: error_restoring became a resting state (it was only a status an admin could park a volume in).
UPDATE "resource_states" SET "state" = 'error_restoring' WHERE "resource_type" = 'volume' AND "state" = 'error_restoring.parked';--> statement-breakpoint
CREATE INDEX "backups_live_project_created" ON "backups" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "backups_live_created" ON "backups" USING btree ("created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "backups_live_volume" ON "backups" USING btree ("volume_id","project_id","data_timestamp") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "backups_deleted" ON "backups" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "resource_states_pending" ON "resource_states" USING btree ("updated_at") WHERE owner IS NULL AND ((resource_type = 'volume' AND (state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'extending.backend', 'reverting.backend', 'retyping.backend', 'restoring-backup.backend') OR (state = 'deleting.backend' AND (dependents = 0)))) OR (resource_type = 'snapshot' AND (state IN ('creating.backend', 'deleting.backend'))) OR (resource_type = 'backup' AND (state IN ('creating.backend', 'deleting.backend'))));--> statement-breakpoint
ALTER TABLE "leases" ADD CONSTRAINT "leases_kind" CHECK (kind IN ('reader', 'dependent', 'backup'));--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_valid_state" CHECK ((resource_type = 'volume' AND state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'creating.parked', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'extending.backend', 'extending.parked', 'reverting.backend', 'reverting.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_extending', 'error_deleting', 'retyping.backend', 'retyping.parked', 'awaiting-transfer.offered', 'awaiting-transfer.parked', 'restoring-backup.backend', 'restoring-backup.parked', 'error_restoring', 'maintenance.parked', 'managing.parked', 'error_managing.parked', 'backing-up.parked', 'error_backing-up.parked', 'downloading.parked', 'uploading.parked', 'deleted')) OR (resource_type = 'snapshot' AND state IN ('creating.backend', 'creating.parked', 'available', 'restoring', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'updating.parked', 'unmanaging.parked', 'backing-up.parked', 'deleted')) OR (resource_type = 'attachment' AND state IN ('reserved', 'attaching', 'attached', 'detaching', 'error_attaching', 'error_detaching', 'detached')) OR (resource_type = 'backup' AND state IN ('creating.backend', 'available', 'restoring', 'deleting.backend', 'error', 'error_deleting', 'deleted')));--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_counts" CHECK ("resource_states"."readers" >= 0 AND "resource_states"."dependents" >= 0 AND "resource_states"."backups" >= 0 AND "resource_states"."size" >= 0 AND "resource_states"."att_reserved" >= 0 AND "resource_states"."att_attaching" >= 0 AND "resource_states"."att_attached" >= 0 AND "resource_states"."att_detaching" >= 0 AND "resource_states"."att_error" >= 0);