CREATE TABLE "quota_class_limits" (
	"class_name" text NOT NULL,
	"resource" text NOT NULL,
	"hard_limit" integer NOT NULL,
	CONSTRAINT "quota_class_limits_class_name_resource_pk" PRIMARY KEY("class_name","resource")
);
--> statement-breakpoint
CREATE TABLE "quota_limits" (
	"project_id" text NOT NULL,
	"resource" text NOT NULL,
	"hard_limit" integer NOT NULL,
	CONSTRAINT "quota_limits_project_id_resource_pk" PRIMARY KEY("project_id","resource")
);
--> statement-breakpoint
CREATE TABLE "quota_reservations" (
	"resource_type" text NOT NULL,
	"resource_id" uuid NOT NULL,
	"project_id" text NOT NULL,
	"resource" text NOT NULL,
	"amount" integer NOT NULL,
	CONSTRAINT "quota_reservations_resource_type_resource_id_resource_pk" PRIMARY KEY("resource_type","resource_id","resource")
);
--> statement-breakpoint
CREATE TABLE "quota_usages" (
	"project_id" text NOT NULL,
	"resource" text NOT NULL,
	"in_use" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "quota_usages_project_id_resource_pk" PRIMARY KEY("project_id","resource")
);
--> statement-breakpoint
-- Written by hand: the default class, unlimited (-1) for every resource: volstate
-- counts usage from the start, and an operator sets limits with
-- os-quota-class-sets (or per project); Cinder's own defaults (10 volumes,
-- 1000 GB) would stop a harness or a benchmark at its eleventh volume.
INSERT INTO "quota_class_limits" ("class_name", "resource", "hard_limit") VALUES
  ('default', 'volumes', -1), ('default', 'snapshots', -1), ('default', 'gigabytes', -1),
  ('default', 'per_volume_gigabytes', -1), ('default', 'backups', -1), ('default', 'backup_gigabytes', -1),
  ('default', 'groups', -1);
--> statement-breakpoint
-- Written by hand: what the live resources of each project use, counted once
-- here; from now on every transition keeps it (src/enforcer.ts).
INSERT INTO "quota_usages" ("project_id", "resource", "in_use")
SELECT project_id, resource, sum(n)::int FROM (
  SELECT d.project_id, 'volumes' AS resource, 1 AS n FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> 'deleted'
  UNION ALL SELECT d.project_id, 'gigabytes', s.size FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id WHERE s.state <> 'deleted'
  UNION ALL SELECT d.project_id, 'snapshots', 1 FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> 'deleted'
  UNION ALL SELECT d.project_id, 'gigabytes', s.size FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id WHERE s.state <> 'deleted'
) AS live GROUP BY project_id, resource;
