/// The JSONL run store's listing order (`GET /runs`), kept in RAM: every run it keeps, once
/// in creation order and once more in its story's, with the few bytes a filter needs.
///
/// Invariants: both arrays are sorted by `RunCursor` (oldest first); a run is in `all` and in
/// its story's array exactly once, with its current stored status. Records are not kept:
/// a page's records are read as `record` reads them. An entry is 32 bytes (the run id's
/// string shares its storage with the store's maps), so a run costs 64 bytes here.
struct RunIndex: Sendable {
    struct Entry: Sendable {
        var createdMS: Int64
        var runID: String
        /// Into `flowNames`.
        var flow: UInt32
        var status: RunStatus

        var position: RunCursor { RunCursor(createdMS: createdMS, runID: runID) }
    }

    /// What the index needs of a run.
    struct Summary: Sendable, Hashable {
        var runID: String
        var storyID: String
        var flow: String
        var status: RunStatus
        var createdMS: Int64

        init(_ record: RunRecord) {
            runID = record.runID
            storyID = record.storyID
            flow = record.flow
            status = record.status
            createdMS = ISOTime.milliseconds(record.createdAt)
        }
    }

    private(set) var all: [Entry] = []
    private var stories: [String: [Entry]] = [:]
    private var flowIDs: [String: UInt32] = [:]
    private var flowNames: [String] = []

    /// An index of `runs`, in any order.
    init(_ runs: some Sequence<Summary>) {
        var byStory: [String: [Entry]] = [:]
        for run in runs {
            let entry = makeEntry(run)
            all.append(entry)
            byStory[run.storyID, default: []].append(entry)
        }
        all.sort { $0.position < $1.position }
        stories = byStory.mapValues { $0.sorted { $0.position < $1.position } }
    }

    var count: Int { all.count }

    private mutating func makeEntry(_ run: Summary) -> Entry {
        let flow: UInt32
        if let known = flowIDs[run.flow] {
            flow = known
        } else {
            flow = UInt32(flowNames.count)
            flowIDs[run.flow] = flow
            flowNames.append(run.flow)
        }
        return Entry(createdMS: run.createdMS, runID: run.runID, flow: flow, status: run.status)
    }

    /// Adds a run, or sets its status when it is there already.
    mutating func upsert(_ run: Summary) {
        let entry = makeEntry(run)
        Self.upsert(entry, into: &all)
        Self.upsert(entry, into: &stories[run.storyID, default: []])
    }

    private static func upsert(_ entry: Entry, into entries: inout [Entry]) {
        let position = entry.position
        // New runs are the newest, nearly always: appended.
        if let last = entries.last, last.position < position {
            entries.append(entry)
            return
        }
        let k = firstIndex(notBelow: position, in: entries)
        if k < entries.count, entries[k].runID == entry.runID {
            entries[k].status = entry.status
        } else {
            entries.insert(entry, at: k)
        }
    }

    /// Removes the runs in `gone` (a prune: one pass over the arrays).
    mutating func remove(_ gone: Set<String>) {
        guard !gone.isEmpty else { return }
        all.removeAll { gone.contains($0.runID) }
        for key in Array(stories.keys) {
            stories[key]!.removeAll { gone.contains($0.runID) }
            if stories[key]!.isEmpty { stories[key] = nil }
        }
    }

    /// The ids of the page's runs, newest first, and whether older runs may match too.
    func page(_ query: RunQuery) -> (ids: [String], more: Bool) {
        let entries: [Entry]
        if let story = query.storyID {
            guard let found = stories[story] else { return ([], false) }
            entries = found
        } else {
            entries = all
        }
        var flow: UInt32?
        if let name = query.flow {
            guard let id = flowIDs[name] else { return ([], false) }
            flow = id
        }
        var k = query.before.map { Self.firstIndex(notBelow: $0, in: entries) } ?? entries.count
        let limit = max(query.limit, 1)
        var ids: [String] = []
        ids.reserveCapacity(limit)
        while k > 0 {
            k -= 1
            let entry = entries[k]
            if let flow, entry.flow != flow { continue }
            if let status = query.status, entry.status != status { continue }
            if ids.count == limit { return (ids, true) }
            ids.append(entry.runID)
        }
        return (ids, false)
    }

    /// The first index whose position is not below `position` (binary search).
    private static func firstIndex(notBelow position: RunCursor, in entries: [Entry]) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].position < position { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
