import Foundation

/// A run's place in the listing order: newest first by creation time (milliseconds), ties
/// broken by run id (bytes, descending). A run keeps its place for life, so a page that ends
/// at a position is followed by the same runs however many are created meanwhile.
///
/// As text (the API's `cursor`): `<created ms, decimal>-<run id>`. Every string matching
/// `pattern` is a position (leading zeros are fine, the id part may be empty or name no run):
/// the listing continues with the runs before it.
public struct RunCursor: Sendable, Hashable, Comparable {
    public var createdMS: Int64
    public var runID: String

    public static let pattern = "^[0-9]{1,15}-[A-Za-z0-9._-]{0,128}$"

    public init(createdMS: Int64, runID: String) {
        self.createdMS = createdMS
        self.runID = runID
    }

    /// The position of `record`.
    public init(_ record: RunRecord) {
        self.init(createdMS: ISOTime.milliseconds(record.createdAt), runID: record.runID)
    }

    /// Nil exactly when `text` does not match `pattern`.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard let dash = bytes.firstIndex(of: UInt8(ascii: "-")), (1...15).contains(dash), bytes.count - dash - 1 <= 128 else {
            return nil
        }
        var ms: Int64 = 0
        for b in bytes[..<dash] {
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) else { return nil }
            ms = ms * 10 + Int64(b - UInt8(ascii: "0"))
        }
        for b in bytes[(dash + 1)...] {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return nil
            }
        }
        self.init(createdMS: ms, runID: String(decoding: bytes[(dash + 1)...], as: UTF8.self))
    }

    public var text: String { "\(createdMS)-\(runID)" }

    /// The creation time as a `RunRecord`'s `createdAt` holds it (the same `Date`, bit for bit).
    public var createdAt: Date { ISOTime.date(milliseconds: createdMS) }

    /// Older first: a page lists the greatest positions below its cursor.
    public static func < (a: RunCursor, b: RunCursor) -> Bool {
        if a.createdMS != b.createdMS { return a.createdMS < b.createdMS }
        return a.runID.utf8.lexicographicallyPrecedes(b.runID.utf8)
    }
}
