ALTER TABLE "quota_usages" DROP CONSTRAINT "quota_usages_project_id_resource_pk";--> statement-breakpoint
ALTER TABLE "quota_usages" ALTER COLUMN "in_use" SET DATA TYPE bigint;--> statement-breakpoint
-- Reordered by hand: drizzle-kit put the column after the key that names it. What each project
-- uses so far becomes slot 0 (db/quotas.ts).
ALTER TABLE "quota_usages" ADD COLUMN "slot" smallint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "quota_usages" ADD CONSTRAINT "quota_usages_project_id_resource_slot_pk" PRIMARY KEY("project_id","resource","slot");
