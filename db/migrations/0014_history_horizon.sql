CREATE TABLE "history_horizon" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"history_before" timestamp with time zone NOT NULL
);
