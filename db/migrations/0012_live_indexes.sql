DROP INDEX "attachments_project_created";--> statement-breakpoint
DROP INDEX "snapshots_project_created";--> statement-breakpoint
DROP INDEX "volumes_project_created";--> statement-breakpoint
ALTER TABLE "attachments" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
-- Hand-written: resources already in their final state are deleted as of their last transition.
UPDATE "volumes" d SET "deleted_at" = s."updated_at" FROM "resource_states" s WHERE s."resource_type" = 'volume' AND s."resource_id" = d."id" AND s."state" = 'deleted';--> statement-breakpoint
UPDATE "snapshots" d SET "deleted_at" = s."updated_at" FROM "resource_states" s WHERE s."resource_type" = 'snapshot' AND s."resource_id" = d."id" AND s."state" = 'deleted';--> statement-breakpoint
UPDATE "attachments" d SET "deleted_at" = s."updated_at" FROM "resource_states" s WHERE s."resource_type" = 'attachment' AND s."resource_id" = d."id" AND s."state" = 'detached';--> statement-breakpoint
CREATE INDEX "attachments_live_project_created" ON "attachments" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "attachments_deleted" ON "attachments" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "snapshots_live_project_created" ON "snapshots" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "snapshots_live_created" ON "snapshots" USING btree ("created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "snapshots_deleted" ON "snapshots" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "volumes_live_project_created" ON "volumes" USING btree ("project_id","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "volumes_live_project_name" ON "volumes" USING btree ("project_id","name","created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "volumes_live_created" ON "volumes" USING btree ("created_at","id") WHERE deleted_at IS NULL;--> statement-breakpoint
CREATE INDEX "volumes_deleted" ON "volumes" USING btree ("deleted_at") WHERE deleted_at IS NOT NULL;