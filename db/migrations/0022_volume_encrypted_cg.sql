ALTER TABLE "volumes" ADD COLUMN "encrypted" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "volumes" ADD COLUMN "consistencygroup_id" uuid;