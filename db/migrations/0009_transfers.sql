CREATE TABLE "transfers" (
	"id" uuid PRIMARY KEY NOT NULL,
	"volume_id" uuid NOT NULL,
	"name" text,
	"salt" text NOT NULL,
	"crypt_hash" text NOT NULL,
	"no_snapshots" boolean DEFAULT false NOT NULL,
	"source_project_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_valid_state";--> statement-breakpoint
ALTER TABLE "snapshots" ADD COLUMN "volume_type_id" uuid;--> statement-breakpoint
ALTER TABLE "transfers" ADD CONSTRAINT "transfers_volume_id_volumes_id_fk" FOREIGN KEY ("volume_id") REFERENCES "public"."volumes"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "transfers_volume" ON "transfers" USING btree ("volume_id");--> statement-breakpoint
CREATE INDEX "transfers_source_created" ON "transfers" USING btree ("source_project_id","created_at","id");--> statement-breakpoint
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "snapshots_type" ON "snapshots" USING btree ("volume_type_id");--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_valid_state" CHECK ((resource_type = 'volume' AND state IN ('creating.db', 'creating.scheduling', 'creating.backend', 'creating.parked', 'available', 'reserved', 'attaching', 'in-use', 'detaching', 'extending.backend', 'extending.parked', 'reverting.backend', 'reverting.parked', 'deleting.backend', 'deleting.parked', 'error', 'error_extending', 'error_deleting', 'retyping.backend', 'retyping.parked', 'awaiting-transfer.offered', 'awaiting-transfer.parked', 'maintenance.parked', 'managing.parked', 'error_managing.parked', 'restoring-backup.parked', 'error_restoring.parked', 'backing-up.parked', 'error_backing-up.parked', 'downloading.parked', 'uploading.parked', 'deleted')) OR (resource_type = 'snapshot' AND state IN ('creating.backend', 'creating.parked', 'available', 'restoring', 'deleting.backend', 'deleting.parked', 'error', 'error_deleting', 'updating.parked', 'unmanaging.parked', 'backing-up.parked', 'deleted')) OR (resource_type = 'attachment' AND state IN ('reserved', 'attaching', 'attached', 'detaching', 'error_attaching', 'error_detaching', 'detached')));--> statement-breakpoint
-- Hand-written: snapshots taken before this migration are of their volume's current type.
UPDATE "snapshots" s SET "volume_type_id" = v."volume_type_id" FROM "volumes" v WHERE v."id" = s."volume_id";
--> statement-breakpoint
-- Hand-written: per-type usage (`<resource>@<type id>`, machines/quota.ts) of the live
-- resources, counted once here; the transitions keep it from now on. An extend in
-- flight has its per-type twin reserved as the base reservation is.
INSERT INTO "quota_reservations" ("resource_type", "resource_id", "project_id", "resource", "amount")
SELECT r.resource_type, r.resource_id, r.project_id, r.resource || '@' || v.volume_type_id, r.amount
FROM quota_reservations r JOIN volumes v ON r.resource_type = 'volume' AND v.id = r.resource_id
WHERE r.resource = 'gigabytes' AND v.volume_type_id IS NOT NULL;
--> statement-breakpoint
-- A retype in flight holds what its new type counts (RETYPED keeps it and gives back the old type's).
INSERT INTO "quota_reservations" ("resource_type", "resource_id", "project_id", "resource", "amount")
SELECT 'volume', s.resource_id, v.project_id, x.resource || '@' || (s.operation ->> 'type_id'), CASE x.resource WHEN 'volumes' THEN 1 ELSE s.size END
FROM resource_states s JOIN volumes v ON v.id = s.resource_id CROSS JOIN (VALUES ('volumes'), ('gigabytes')) AS x(resource)
WHERE s.resource_type = 'volume' AND s.state = 'retyping.backend' AND s.operation ->> 'type_id' IS NOT NULL;
--> statement-breakpoint
INSERT INTO "quota_usages" ("project_id", "resource", "in_use")
SELECT project_id, resource, sum(n)::int FROM (
  SELECT d.project_id, 'volumes@' || d.volume_type_id AS resource, 1 AS n FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> 'deleted' AND d.volume_type_id IS NOT NULL
  UNION ALL SELECT d.project_id, 'gigabytes@' || d.volume_type_id, s.size FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> 'deleted' AND d.volume_type_id IS NOT NULL
  UNION ALL SELECT d.project_id, 'snapshots@' || d.volume_type_id, 1 FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> 'deleted' AND d.volume_type_id IS NOT NULL
  UNION ALL SELECT d.project_id, 'gigabytes@' || d.volume_type_id, s.size FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> 'deleted' AND d.volume_type_id IS NOT NULL
  UNION ALL SELECT project_id, resource, amount FROM quota_reservations WHERE resource LIKE '%@%'
) AS live GROUP BY project_id, resource;
