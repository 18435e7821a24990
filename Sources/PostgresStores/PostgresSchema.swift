import Logging
import PostgresNIO

/// flowd's tables, as numbered migrations applied at start-up.
///
/// Each migration runs in its own transaction that first takes a transaction-scoped
/// advisory lock, so replicas starting together apply it once: the second waits, then
/// sees the version recorded and skips it. Migrations are only ever appended.
enum PostgresSchema {
    /// `pg_advisory_xact_lock` key of migrations ("flowd" in ASCII).
    static let migrationLock: Int64 = 0x66_6C_6F_77_64

    static let migrations: [(version: Int32, statements: [String])] = [
        (1, [
            """
            CREATE TABLE flowd_memory (
                scope text NOT NULL,
                key text COLLATE "C" NOT NULL,
                value text NOT NULL,
                PRIMARY KEY (scope, key))
            """,
            """
            CREATE TABLE flowd_documents (
                id text COLLATE "C" PRIMARY KEY,
                body bytea NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now())
            """,
            """
            CREATE TABLE flowd_runs (
                run_id text PRIMARY KEY,
                seq bigserial UNIQUE,
                story_id text NOT NULL,
                flow text NOT NULL,
                status text NOT NULL,
                owner text NOT NULL,
                cancel_requested boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL,
                finished_at timestamptz,
                record text NOT NULL)
            """,
            "CREATE INDEX flowd_runs_live ON flowd_runs (story_id, seq) WHERE finished_at IS NULL",
            "CREATE INDEX flowd_runs_owner ON flowd_runs (owner) WHERE finished_at IS NULL",
            "CREATE INDEX flowd_runs_finished ON flowd_runs (finished_at) WHERE finished_at IS NOT NULL",
            """
            CREATE TABLE flowd_run_events (
                run_id text NOT NULL REFERENCES flowd_runs (run_id) ON DELETE CASCADE,
                event_id integer NOT NULL,
                body text NOT NULL,
                PRIMARY KEY (run_id, event_id))
            """,
            """
            CREATE TABLE flowd_replicas (
                replica_id text PRIMARY KEY,
                lease_expires timestamptz NOT NULL)
            """,
        ]),
        // Durable runs: a run's idempotency key (unique among all replicas' runs) and its journal.
        (2, [
            "ALTER TABLE flowd_runs ADD COLUMN idempotency_key text",
            "CREATE UNIQUE INDEX flowd_runs_idempotency_key ON flowd_runs (idempotency_key) WHERE idempotency_key IS NOT NULL",
            """
            CREATE TABLE flowd_run_steps (
                run_id text NOT NULL REFERENCES flowd_runs (run_id) ON DELETE CASCADE,
                step_no integer NOT NULL,
                body text NOT NULL,
                PRIMARY KEY (run_id, step_no))
            """,
        ]),
        // Run history (`GET /runs`): keyset pages, newest first, of all runs or of one story's.
        (3, [
            #"CREATE INDEX flowd_runs_listing ON flowd_runs (created_at, run_id COLLATE "C")"#,
            #"CREATE INDEX flowd_runs_story_listing ON flowd_runs (story_id, created_at, run_id COLLATE "C")"#,
        ]),
    ]

    static var latestVersion: Int32 { migrations.last?.version ?? 0 }

    /// Brings the schema to the latest version; idempotent, safe with several replicas at once.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS flowd_schema_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
        }
        for migration in migrations {
            try await connection.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
                let rows = try await connection.query(
                    "SELECT 1 FROM flowd_schema_migrations WHERE version = \(migration.version)", logger: logger)
                var applied = false
                for try await _ in rows { applied = true }
                guard !applied else { return }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO flowd_schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                logger.info("database schema migrated", metadata: ["version": "\(migration.version)"])
            }
        }
    }
}
