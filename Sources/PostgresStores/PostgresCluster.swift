import FlowdJSON
import Foundation
import FlowdSync
import Logging
import PostgresNIO
import Stores

/// This replica among the others on one database: its lease, the stories' queues, the live
/// events other replicas follow, and cancels that cross replicas. See docs/architecture.md.
///
/// - Order: a run has arrived when its row is inserted (`seq`, a sequence); its turn comes
///   when it is the lowest-`seq` unfinished run of its story. Waiting is a LISTEN for
///   `s:<story>` (sent by every finish) with a 250 ms poll behind it.
/// - Leases: the replica renews `flowd_replicas.lease_expires` several times per TTL; every
///   replica, once a second, takes the unfinished runs whose owner's lease expired: it
///   resumes them (`RestartPolicy.resume`: they become its own, `resumed` counted) or fails
///   them (`.fail`). The row lock and the owner change make exactly one replica take a run.
/// - Reachability: a renewal that fails or times out marks the database unavailable (the
///   stores then fail at once, `/readyz` and new runs say 503); one that works marks it back.
public final class PostgresCluster: Sendable {
    public let database: PostgresDatabase
    public let runs: PostgresRunStore
    public let replicaID: String
    let leaseTTL: Duration
    /// What becomes of the runs of a replica whose lease expired.
    let onRestart: RestartPolicy
    let logger: Logger
    let wakeups = Wakeups()
    private let pendingEvents = Locked<[(runID: String, event: RunEvent)]>([])
    private let eventsReady = Wakeups()

    static let turnPoll = Duration.milliseconds(250)
    static let cancelPoll = Duration.milliseconds(400)
    static let followPoll = Duration.milliseconds(500)

    public init(database: PostgresDatabase, replicaID: String, leaseTTL: Duration, onRestart: RestartPolicy = .resume,
                logger: Logger) {
        self.database = database
        self.replicaID = replicaID
        self.leaseTTL = leaseTTL
        self.onRestart = onRestart
        self.logger = logger
        runs = PostgresRunStore(database: database, owner: replicaID)
    }

    /// Takes this replica's lease; throws when the database does not answer.
    public func register() async throws(StoreError) {
        try await renewLease()
    }

    /// The background work of the replica, until cancelled: lease renewal, the listener,
    /// expired leases (`resume` gets the runs this replica took over, in arrival order),
    /// cancel requests (`cancel` is called with the id of a run of this replica that someone
    /// asked to cancel), live events.
    public func run(cancel: @escaping @Sendable (String) -> Void,
                    resume: @escaping @Sendable ([InterruptedRun]) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.heartbeat() }
            group.addTask { await self.listen(cancel: cancel) }
            group.addTask { await self.reapExpiredLeases(resume: resume) }
            group.addTask { await self.pollCancels(cancel) }
            group.addTask { await self.writeEvents() }
            await group.waitForAll()
        }
    }

    // MARK: Story order

    /// Waits until `record`'s run is the first unfinished run of its story; when `announce`,
    /// then stores it as `record` (status `running`), without waiting for the disk (nothing
    /// answered depends on it). Otherwise the turn is only read: no write, no commit. False
    /// when the task was cancelled while waiting.
    public func waitForTurn(_ record: RunRecord, announce: Bool) async throws(StoreError) -> Bool {
        let key = "s:" + record.storyID
        while !Task.isCancelled {
            let ticket = wakeups.register(key)
            defer { wakeups.unregister(ticket) }
            let (first, started, mine) = announce
                ? try await startIfFirst(record) : (try await firstUnfinished(record.storyID), false, true)
            if started || (!announce && first == record.runID) { return true }
            if first == nil || !mine {
                throw StoreError(.failed, "run \(record.runID) was finished or taken over by another replica (lease expired)")
            }
            await ticket.wait(timeout: PostgresCluster.turnPoll)
        }
        return false
    }

    /// The first unfinished run of the story, in arrival order.
    private func firstUnfinished(_ storyID: String) async throws(StoreError) -> String? {
        let rows = try await database.rows("""
            SELECT run_id FROM flowd_runs WHERE story_id = \(storyID) AND finished_at IS NULL ORDER BY seq LIMIT 1
            """, "run turn") { row in try row.decode(String.self) }
        return rows.first
    }

    /// One round trip: who is first, and if it is this run, mark it running; `mine` is false
    /// when the run is no longer this replica's to run (finished or taken over elsewhere).
    private func startIfFirst(_ record: RunRecord) async throws(StoreError) -> (first: String?, started: Bool, mine: Bool) {
        let rows = try await database.rows("""
            WITH first AS (
                SELECT run_id FROM flowd_runs WHERE story_id = \(record.storyID) AND finished_at IS NULL ORDER BY seq LIMIT 1),
            started AS (
                UPDATE flowd_runs SET status = \(record.status.rawValue), record = \(record.storedJSON.jsonString)
                -- Rechecked on the row as it is once locked: a query a cancelled run abandoned
                -- may land after that run's finish, which it must not overwrite; nor may a
                -- replica whose lease expired write over the replica that took the run over.
                WHERE run_id = \(record.runID) AND run_id = (SELECT run_id FROM first) AND finished_at IS NULL
                  AND owner = \(replicaID)
                RETURNING 1)
            SELECT (SELECT run_id FROM first), EXISTS (SELECT 1 FROM started),
                   EXISTS (SELECT 1 FROM flowd_runs WHERE run_id = \(record.runID) AND finished_at IS NULL AND owner = \(replicaID)),
                   set_config('synchronous_commit', 'off', true)
            """, "run turn") { row in try row.decode((String?, Bool, Bool, String).self) }
        guard let (first, started, mine, _) = rows.first else { throw StoreError(.io, "run turn: no answer row") }
        return (first, started, mine)
    }

    // MARK: Live events

    /// Queues a live run's event for the table (written in order, in batches, by `run`).
    public func publish(_ runID: String, _ event: RunEvent) {
        pendingEvents.withLock { $0.append((runID, event)) }
        eventsReady.notify("events")
    }

    private func writeEvents() async {
        while !Task.isCancelled {
            let ticket = eventsReady.register("events")
            let batch = pendingEvents.withLock { pending -> [(runID: String, event: RunEvent)] in
                defer { pending = [] }
                return pending
            }
            if batch.isEmpty {
                // `publish` notifies after it queues, and the ticket was taken before the queue
                // was read: nothing can be missed, so this waits for the next event, not a second.
                await ticket.wait()
                eventsReady.unregister(ticket)
                continue
            }
            eventsReady.unregister(ticket)
            let runIDs = Array(Set(batch.map(\.runID)))
            do {
                try await database.transaction("run events") { [logger] connection in
                    // The run's finish writes them all again, durably: these need not wait for the disk.
                    try await connection.query("SET LOCAL synchronous_commit = off", logger: logger)
                    try await PostgresRunStore.insertEvents(batch, on: connection, logger: logger)
                    try await connection.query("""
                        SELECT pg_notify(\(PostgresDatabase.channel), 'e:' || id) FROM unnest(\(runIDs)::text[]) AS id
                        """, logger: logger)
                }
            } catch {
                // Put them back in front, in order; the run's finish writes them all anyway.
                pendingEvents.withLock { $0.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Sends `runID`'s events after `after` to `send` as they are stored, until its terminal
    /// event, its end, or `isClosed` says the follower left.
    public func follow(_ runID: String, after: Int, send: @Sendable (RunEvent) -> Void,
                       isClosed: @Sendable () -> Bool) async {
        var last = after
        while !Task.isCancelled, !isClosed() {
            let ticket = wakeups.register("e:" + runID)
            defer { wakeups.unregister(ticket) }
            guard let (events, finished) = try? await runs.eventsSoFar(runID, after: last) else {
                let known = database.isAvailable ? (try? await runs.record(runID)) != nil : true
                if known {
                    await ticket.wait(timeout: PostgresCluster.followPoll)
                    continue
                }
                return
            }
            for event in events where event.id == last + 1 {
                send(event)
                last = event.id
                if event.isTerminal { return }
            }
            if finished, events.isEmpty { return }
            await ticket.wait(timeout: PostgresCluster.followPoll)
        }
    }

    // MARK: Cancel

    /// Asks the owner of a queued or running run to cancel it; the run's record, or nil when
    /// the run is unknown or already finished.
    public func requestCancel(_ runID: String) async throws(StoreError) -> RunRecord? {
        guard Identifier.isValidID(runID) else { return nil }
        let rows = try await database.rows("""
            WITH asked AS (
                UPDATE flowd_runs SET cancel_requested = true WHERE run_id = \(runID) AND finished_at IS NULL
                RETURNING record)
            SELECT record, pg_notify(\(PostgresDatabase.channel), 'c:' || \(runID))::text FROM asked
            """, "run cancel") { row in try row.decode((String, String).self) }
        guard let text = rows.first?.0 else { return nil }
        return try PostgresRunStore.parseRecord(text, runID)
    }

    private func pollCancels(_ cancel: @Sendable (String) -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: PostgresCluster.cancelPoll)
            guard database.isAvailable else { continue }
            let asked = (try? await database.rows("""
                SELECT run_id FROM flowd_runs WHERE owner = \(replicaID) AND finished_at IS NULL AND cancel_requested
                """, "cancel poll") { row in try row.decode(String.self) }) ?? []
            for runID in asked { cancel(runID) }
        }
    }

    // MARK: Notifications

    private func listen(cancel: @escaping @Sendable (String) -> Void) async {
        while !Task.isCancelled {
            do {
                try await database.client.withConnection { connection in
                    try await connection.listen(on: PostgresDatabase.channel) { notifications in
                        // Anything sent while no one listened is found by the waiters' polls; wake them now.
                        self.wakeups.notifyAll()
                        for try await notification in notifications {
                            let payload = notification.payload
                            if payload.hasPrefix("c:") {
                                cancel(String(payload.dropFirst(2)))
                            } else {
                                self.wakeups.notify(payload)
                            }
                        }
                    }
                }
            } catch {
                if !Task.isCancelled {
                    logger.debug("listener lost, reconnecting", metadata: ["error": "\(PostgresDatabase.describe(error))"])
                }
            }
            wakeups.notifyAll()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    // MARK: Leases

    /// Has a 2 s deadline: a renewal that takes longer counts as failed.
    private func renewLease() async throws(StoreError) {
        let seconds = Double(leaseTTL.components.seconds) + Double(leaseTTL.components.attoseconds) / 1e18
        let (client, logger, replicaID) = (database.client, self.logger, self.replicaID)
        try await database.bounded("lease renewal", .seconds(2)) {
            for try await _ in try await client.query("""
                INSERT INTO flowd_replicas (replica_id, lease_expires) VALUES (\(replicaID), now() + make_interval(secs => \(seconds)))
                ON CONFLICT (replica_id) DO UPDATE SET lease_expires = excluded.lease_expires
                """, logger: logger) {}
        }
    }

    /// Renews the lease every third of the TTL, and at least once a second, which is also how
    /// soon a lost database is noticed.
    private func heartbeat() async {
        let interval = min(leaseTTL / 3, .seconds(1))
        while !Task.isCancelled {
            let renewed = (try? await renewLease()) != nil
            if database.setAvailable(renewed) {
                if renewed {
                    logger.notice("database reachable again")
                    wakeups.notifyAll()
                } else {
                    logger.error("database unreachable: new runs are refused until it is back")
                }
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// Once a second: the unfinished runs of replicas whose lease expired are taken over.
    private func reapExpiredLeases(resume: @escaping @Sendable ([InterruptedRun]) -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            guard database.isAvailable else { continue }
            do {
                try await reapOnce(resume: resume)
            } catch where !Task.isCancelled {
                logger.warning("expired leases not checked", metadata: ["error": "\(error)"])
            } catch {
                return
            }
        }
    }

    /// One look for the unfinished runs whose owner's lease expired, in one transaction that
    /// locks their rows (`FOR UPDATE SKIP LOCKED`: replicas looking at once take different
    /// runs, and a run taken over belongs to a live lease afterwards, so no one takes it
    /// again). With `.resume` each becomes this replica's, its record's `resumed` counted
    /// (its status and a requested cancel as they were), and once committed `resume` gets
    /// them with their journals and stored events, in arrival order. With `.fail` each ends
    /// `failed` (`RunFinish.interrupted`) with an `error` event. Either way its story's
    /// waiters are woken.
    func reapOnce(resume: @Sendable ([InterruptedRun]) -> Void) async throws(StoreError) {
        let (me, policy, logger) = (replicaID, onRestart, self.logger)
        let (failed, resumed) = try await database.transaction("lease expiry") { connection -> ([String], [InterruptedRun]) in
            let rows = try await connection.query("""
                SELECT r.run_id, r.owner, r.record, (SELECT coalesce(max(e.event_id), 0) FROM flowd_run_events e WHERE e.run_id = r.run_id)
                FROM flowd_runs r
                WHERE r.finished_at IS NULL AND r.owner <> \(me)
                  AND NOT EXISTS (SELECT 1 FROM flowd_replicas p WHERE p.replica_id = r.owner AND p.lease_expires > now())
                ORDER BY r.seq
                FOR UPDATE OF r SKIP LOCKED
                """, logger: logger)
            var found: [(String, String, String, Int32)] = []
            for try await row in rows.decode((String, String, String, Int32).self) { found.append(row) }
            switch policy {
            case .fail:
                return (try await PostgresCluster.fail(found, on: connection, logger: logger), [])
            case .resume:
                return ([], try await PostgresCluster.takeOver(found, by: me, on: connection, logger: logger))
            }
        }
        for runID in failed {
            logger.warning("run failed: its replica's lease expired", metadata: ["run_id": "\(runID)"])
        }
        for run in resumed {
            logger.warning("run taken over: its replica's lease expired",
                           metadata: ["run_id": "\(run.record.runID)", "resumed": "\(run.record.resumed)"])
        }
        if !resumed.isEmpty { resume(resumed) }
    }

    /// `.fail`: each locked run (id, owner, record, last event id) ends `failed`; their ids.
    private static func fail(_ found: [(String, String, String, Int32)],
                             on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        var failed: [String] = []
        for (runID, owner, text, lastEvent) in found {
            guard let record = try? PostgresRunStore.parseRecord(text, runID) else { continue }
            let verdict = RunFinish.interrupted(record, lastEventID: Int(lastEvent), at: Date(),
                                                why: "replica \(owner) lost its lease")
            try await connection.query("""
                UPDATE flowd_runs SET status = 'failed', finished_at = now(), record = \(verdict.record.storedJSON.jsonString)
                WHERE run_id = \(runID)
                """, logger: logger)
            try await PostgresRunStore.insertEvents(verdict.events.map { (runID, $0) }, on: connection, logger: logger)
            try await connection.query(
                "SELECT pg_notify(\(PostgresDatabase.channel), 's:' || \(record.storyID)), pg_notify(\(PostgresDatabase.channel), 'e:' || \(runID))",
                logger: logger)
            failed.append(runID)
        }
        return failed
    }

    /// `.resume`: each locked run becomes `me`'s with `resumed` counted; they come back, in
    /// the order found, with their journals and every stored event.
    private static func takeOver(_ found: [(String, String, String, Int32)], by me: String,
                                 on connection: PostgresConnection, logger: Logger) async throws -> [InterruptedRun] {
        var records: [RunRecord] = []
        for (runID, _, text, _) in found {
            guard var record = try? PostgresRunStore.parseRecord(text, runID) else { continue }
            record.resumed += 1
            records.append(record)
        }
        guard !records.isEmpty else { return [] }
        let ids = records.map(\.runID)
        try await connection.query("""
            UPDATE flowd_runs r SET owner = \(me), record = t.record
            FROM unnest(\(ids)::text[], \(records.map(\.storedJSON.jsonString))::text[]) AS t(run_id, record)
            WHERE r.run_id = t.run_id
            """, logger: logger)
        var steps: [String: [RunStep]] = [:]
        for try await (runID, body) in try await connection.query("""
            SELECT run_id, body FROM flowd_run_steps WHERE run_id = ANY(\(ids)) ORDER BY run_id, step_no
            """, logger: logger).decode((String, String).self) {
            steps[runID, default: []].append(try PostgresRunStore.parseStep(body, runID))
        }
        var events: [String: [RunEvent]] = [:]
        for try await (runID, body) in try await connection.query("""
            SELECT run_id, body FROM flowd_run_events WHERE run_id = ANY(\(ids)) ORDER BY run_id, event_id
            """, logger: logger).decode((String, String).self) {
            events[runID, default: []].append(try PostgresRunStore.parseEvent(body, runID))
        }
        // A waiter of a story whose run changed hands looks again (the old owner's, if it is
        // still alive, finds the run is no longer its own).
        let stories = Array(Set(records.map(\.storyID)))
        try await connection.query(
            "SELECT pg_notify(\(PostgresDatabase.channel), 's:' || story) FROM unnest(\(stories)::text[]) AS story", logger: logger)
        return records.map { InterruptedRun(record: $0, steps: steps[$0.runID] ?? [], events: events[$0.runID] ?? []) }
    }
}
