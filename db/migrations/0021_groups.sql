CREATE TABLE "group_snapshots" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text,
	"group_id" uuid NOT NULL,
	"group_type_id" uuid NOT NULL,
	"name" text,
	"description" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "group_types" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"is_public" boolean DEFAULT true NOT NULL,
	"group_specs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "groups" (
	"id" uuid PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"user_id" text,
	"name" text,
	"description" text,
	"group_type_id" uuid NOT NULL,
	"volume_type_ids" uuid[] NOT NULL,
	"availability_zone" text DEFAULT 'nova' NOT NULL,
	"group_snapshot_id" uuid,
	"source_group_id" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "volume_type_encryption" (
	"volume_type_id" uuid PRIMARY KEY NOT NULL,
	"encryption_id" uuid NOT NULL,
	"provider" text NOT NULL,
	"cipher" text,
	"key_size" integer,
	"control_location" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone,
	CONSTRAINT "volume_type_encryption_control_location" CHECK ("volume_type_encryption"."control_location" IN ('front-end', 'back-end'))
);
--> statement-breakpoint
ALTER TABLE "leases" DROP CONSTRAINT "leases_kind";--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_valid_state";--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_counts";--> statement-breakpoint
DROP INDEX "resource_states_pending";--> statement-breakpoint
ALTER TABLE "resource_states" ADD COLUMN "members" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "group_snapshot_id" uuid;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "group_id" uuid;--> statement-breakpoint
ALTER TABLE "group_snapshots" ADD CONSTRAINT "group_snapshots_group_id_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."groups"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "volume_type_encryption" ADD CONSTRAINT "volume_type_encryption_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "group_snapshots_live_project_created" ON "group_snapshots" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "group_snapshots_live_created" ON "group_snapshots" USING btree ("created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "group_snapshots_deleted" ON "group_snapshots" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "group_snapshots_group" ON "group_snapshots" USING btree ("group_id");--> statement-breakpoint
CREATE UNIQUE INDEX "group_types_name" ON "group_types" USING btree ("name");--> statement-breakpoint
CREATE INDEX "groups_live_project_created" ON "groups" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "groups_live_created" ON "groups" USING btree ("created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "groups_deleted" ON "groups" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "groups_type" ON "groups" USING btree ("group_type_id");--> statement-breakpoint
CREATE INDEX "snapshots_group_snapshot" ON "snapshots" USING btree ("group_snapshot_id") WHERE group_snapshot_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "volumes_group" ON "volumes" USING btree ("group_id") WHERE group_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "resource_states_pending" ON "resource_states" USING btree ("updated_at") WHERE owner IS NULL AND ((resource_type = 'volume' AND (state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'extending.backend', 'reverting.backend', 'retyping.backend', 'restoring-backup.backend') OR (state = 'deleting.backend' AND (dependents = 0)))) OR (resource_type = 'snapshot' AND (state IN ('creating.backend', 'deleting.backend'))) OR (resource_type = 'backup' AND (state IN ('creating.backend', 'creating.import', 'deleting.backend'))) OR (resource_type = 'group' AND (state IN ('creating.backend') OR (state = 'deleting.backend' AND (members = 0)))) OR (resource_type = 'group_snapshot' AND (state IN ('creating.backend') OR (state = 'deleting.backend' AND (members = 0)))));--> statement-breakpoint
ALTER TABLE "leases" ADD CONSTRAINT "leases_kind" CHECK (kind IN ('reader', 'dependent', 'backup', 'member'));--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_valid_state" CHECK ((resource_type = 'volume' AND state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'creating.parked', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'extending.backend', 'extending.parked', 'reverting.backend', 'reverting.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_extending', 'error_deleting', 'retyping.backend', 'retyping.parked', 'awaiting-transfer.offered', 'awaiting-transfer.parked', 'restoring-backup.backend', 'restoring-backup.parked', 'error_restoring', 'maintenance.parked', 'managing.parked', 'error_managing.parked', 'backing-up.parked', 'error_backing-up.parked', 'downloading.parked', 'uploading.parked', 'deleted')) OR (resource_type = 'snapshot' AND state IN ('creating.backend', 'creating.group', 'creating.parked', 'available', 'restoring', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'updating.parked', 'unmanaging.parked', 'backing-up.parked', 'deleted')) OR (resource_type = 'attachment' AND state IN ('reserved', 'attaching', 'attached', 'detaching', 'error_attaching', 'error_detaching', 'detached')) OR (resource_type = 'backup' AND state IN ('creating.backend', 'creating.import', 'available', 'restoring', 'deleting.backend', 'error', 'error_deleting', 'deleted')) OR (resource_type = 'group' AND state IN ('creating.backend', 'creating.parked', 'available', 'updating.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'deleted')) OR (resource_type = 'group_snapshot' AND state IN ('creating.backend', 'creating.parked', 'available', 'updating.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'deleted')));--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_counts" CHECK ("resource_states"."readers" >= 0 AND "resource_states"."dependents" >= 0 AND "resource_states"."backups" >= 0 AND "resource_states"."members" >= 0 AND "resource_states"."size" >= 0 AND "resource_states"."att_reserved" >= 0 AND "resource_states"."att_attaching" >= 0 AND "resource_states"."att_attached" >= 0 AND "resource_states"."att_detaching" >= 0 AND "resource_states"."att_error" >= 0);--> statement-breakpoint
INSERT INTO "group_types" ("id", "name", "description", "is_public", "group_specs") VALUES (gen_random_uuid(), 'default_cgsnapshot_type', 'Default group type for migrating cgsnapshot', true, '{"consistent_group_snapshot_enabled": "<is> True"}');