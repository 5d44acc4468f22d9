CREATE TABLE "accounts" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"settled" bigint DEFAULT 0 NOT NULL,
	"held" bigint DEFAULT 0 NOT NULL,
	"last_seq" bigint DEFAULT 0 NOT NULL,
	"metadata" jsonb,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "accounts_kind_matches_id" CHECK (("accounts"."kind" = 'system') = ("accounts"."id" LIKE '@%')),
	CONSTRAINT "accounts_user_balance_bounds" CHECK ("accounts"."kind" = 'system' OR ("accounts"."held" >= 0 AND "accounts"."settled" - "accounts"."held" >= 0 AND "accounts"."settled" <= 9007199254740991)),
	CONSTRAINT "accounts_system_balance_elsewhere" CHECK ("accounts"."kind" = 'user' OR ("accounts"."settled" = 0 AND "accounts"."held" = 0))
);
--> statement-breakpoint
CREATE TABLE "entries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "entries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"transaction_id" uuid NOT NULL,
	"account_id" text NOT NULL,
	"seq" bigint,
	"amount" bigint NOT NULL,
	"settled_after" bigint,
	"kind" text NOT NULL,
	"hold_id" uuid,
	"metadata" jsonb,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "entries_amount_range" CHECK ("entries"."amount" <> 0 AND "entries"."amount" BETWEEN -9007199254740991 AND 9007199254740991),
	CONSTRAINT "entries_seq_positive" CHECK ("entries"."seq" IS NULL OR "entries"."seq" >= 1)
);
--> statement-breakpoint
CREATE TABLE "holds" (
	"id" uuid PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"amount" bigint NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"settled_amount" bigint,
	"transaction_id" uuid,
	"order_id" text,
	"description" text,
	"metadata" jsonb,
	"reason" text,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp (3) with time zone,
	CONSTRAINT "holds_amount_range" CHECK ("holds"."amount" BETWEEN 1 AND 9007199254740991),
	CONSTRAINT "holds_resolved_iff_terminal" CHECK (("holds"."status" = 'pending') = ("holds"."resolved_at" IS NULL)),
	CONSTRAINT "holds_settled_shape" CHECK (("holds"."status" = 'settled') = ("holds"."settled_amount" IS NOT NULL AND "holds"."transaction_id" IS NOT NULL)),
	CONSTRAINT "holds_settled_amount_range" CHECK ("holds"."settled_amount" IS NULL OR "holds"."settled_amount" BETWEEN 1 AND "holds"."amount")
);
--> statement-breakpoint
CREATE TABLE "idempotency_keys" (
	"role" text NOT NULL,
	"key" text NOT NULL,
	"request_hash" text NOT NULL,
	"response_status" integer NOT NULL,
	"response_body" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "idempotency_keys_role_key_pk" PRIMARY KEY("role","key")
);
--> statement-breakpoint
CREATE TABLE "ledger_transactions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"reason" text,
	"metadata" jsonb,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "promotions" (
	"code" text PRIMARY KEY NOT NULL,
	"multiplier" integer NOT NULL,
	"max_redemptions" integer,
	"redemptions" integer DEFAULT 0 NOT NULL,
	"starts_at" timestamp (3) with time zone,
	"ends_at" timestamp (3) with time zone,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "promotions_code_format" CHECK ("promotions"."code" ~ '^[A-Z0-9_-]{3,32}$'),
	CONSTRAINT "promotions_multiplier_range" CHECK ("promotions"."multiplier" BETWEEN 2 AND 10),
	CONSTRAINT "promotions_redemption_cap" CHECK ("promotions"."max_redemptions" IS NULL OR ("promotions"."max_redemptions" >= 1 AND "promotions"."redemptions" <= "promotions"."max_redemptions")),
	CONSTRAINT "promotions_window" CHECK ("promotions"."starts_at" IS NULL OR "promotions"."ends_at" IS NULL OR "promotions"."starts_at" < "promotions"."ends_at")
);
--> statement-breakpoint
CREATE TABLE "redemptions" (
	"promotion_code" text NOT NULL,
	"account_id" text NOT NULL,
	"basis" bigint NOT NULL,
	"credited" bigint NOT NULL,
	"transaction_id" uuid,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "redemptions_promotion_code_account_id_pk" PRIMARY KEY("promotion_code","account_id")
);
--> statement-breakpoint
CREATE TABLE "system_balances" (
	"account_id" text NOT NULL,
	"stripe" smallint NOT NULL,
	"settled" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "system_balances_account_id_stripe_pk" PRIMARY KEY("account_id","stripe"),
	CONSTRAINT "system_balances_stripe_range" CHECK ("system_balances"."stripe" >= 0 AND "system_balances"."stripe" < 16)
);
--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "entries" ADD CONSTRAINT "entries_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "holds" ADD CONSTRAINT "holds_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "holds" ADD CONSTRAINT "holds_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_promotion_code_promotions_code_fk" FOREIGN KEY ("promotion_code") REFERENCES "public"."promotions"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "redemptions" ADD CONSTRAINT "redemptions_transaction_id_ledger_transactions_id_fk" FOREIGN KEY ("transaction_id") REFERENCES "public"."ledger_transactions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "system_balances" ADD CONSTRAINT "system_balances_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "entries_account_seq" ON "entries" USING btree ("account_id","seq");--> statement-breakpoint
CREATE INDEX "entries_account_id" ON "entries" USING btree ("account_id","id");--> statement-breakpoint
CREATE INDEX "entries_transaction" ON "entries" USING btree ("transaction_id");--> statement-breakpoint
CREATE INDEX "holds_account_id" ON "holds" USING btree ("account_id","id");--> statement-breakpoint
CREATE INDEX "holds_pending_expiry" ON "holds" USING btree ("expires_at") WHERE "holds"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "idempotency_keys_created_at" ON "idempotency_keys" USING btree ("created_at");