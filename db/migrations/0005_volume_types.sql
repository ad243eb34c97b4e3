CREATE TABLE "volume_type_access" (
	"volume_type_id" uuid NOT NULL,
	"project_id" text NOT NULL,
	CONSTRAINT "volume_type_access_volume_type_id_project_id_pk" PRIMARY KEY("volume_type_id","project_id")
);
--> statement-breakpoint
CREATE TABLE "volume_types" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"description" text,
	"is_public" boolean DEFAULT true NOT NULL,
	"extra_specs" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "volume_type_id" uuid;--> statement-breakpoint
ALTER TABLE "volume_type_access" ADD CONSTRAINT "volume_type_access_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "volume_types_name" ON "volume_types" USING btree ("name");--> statement-breakpoint
ALTER TABLE "volumes" ADD CONSTRAINT "volumes_volume_type_id_volume_types_id_fk" FOREIGN KEY ("volume_type_id") REFERENCES "public"."volume_types"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "volumes_type" ON "volumes" USING btree ("volume_type_id");--> statement-breakpoint
-- Written by hand: Cinder's default type, and every existing volume of it.
INSERT INTO "volume_types" ("id", "name", "description") VALUES (gen_random_uuid(), '__DEFAULT__', 'Default Volume Type');--> statement-breakpoint
UPDATE "volumes" SET "volume_type_id" = (SELECT "id" FROM "volume_types" WHERE "name" = '__DEFAULT__');
