ALTER TABLE "volumes" ALTER COLUMN "readonly" DROP DEFAULT;--> statement-breakpoint
ALTER TABLE "volumes" ALTER COLUMN "readonly" DROP NOT NULL;