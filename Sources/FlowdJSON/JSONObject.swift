/// A JSON object: members in insertion order, each key at most once.
///
/// Setting an existing key replaces its value in place (the key keeps its
/// position). Equality and hashing ignore the order. Lookup is linear for
/// small objects and goes through a key index for larger ones, so hostile
/// input with many keys stays linear to parse.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// Objects with more members than this keep a key → position index.
    private static let indexThreshold = 12

    private var entries: [Element]
    private var index: [String: Int]?

    public init() {
        entries = []
        index = nil
    }

    /// Builds an object from pairs; a repeated key keeps its first position and its last value.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        self.init()
        for (k, v) in pairs { self[k] = v }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    /// Parser fast path: `keys` and `values` have the same count.
    init(keys: ArraySlice<String>, values: ArraySlice<JSONValue>) {
        entries = []
        entries.reserveCapacity(keys.count)
        index = nil
        if keys.count <= Self.indexThreshold {
            var vi = values.startIndex
            outer: for k in keys {
                let v = values[vi]
                vi += 1
                for j in entries.indices where entries[j].key == k {
                    entries[j].value = v
                    continue outer
                }
                entries.append((k, v))
            }
        } else {
            var idx: [String: Int] = [:]
            idx.reserveCapacity(keys.count)
            var vi = values.startIndex
            for k in keys {
                let v = values[vi]
                vi += 1
                if let j = idx[k] {
                    entries[j].value = v
                } else {
                    idx[k] = entries.count
                    entries.append((k, v))
                }
            }
            index = entries.count > Self.indexThreshold ? idx : nil
        }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    public func makeIterator() -> IndexingIterator<[Element]> {
        entries.makeIterator()
    }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return entries.firstIndex { $0.key == key }
    }

    /// The value for `key`; assigning nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            guard let i = position(of: key) else { return nil }
            return entries[i].value
        }
        set {
            if let i = position(of: key) {
                if let newValue {
                    entries[i].value = newValue
                } else {
                    entries.remove(at: i)
                    rebuildIndex()
                }
            } else if let newValue {
                entries.append((key, newValue))
                if index != nil {
                    index![key] = entries.count - 1
                } else if entries.count > Self.indexThreshold {
                    rebuildIndex()
                }
            }
        }
    }

    private mutating func rebuildIndex() {
        guard entries.count > Self.indexThreshold else {
            index = nil
            return
        }
        var idx: [String: Int] = [:]
        idx.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() { idx[e.key] = i }
        index = idx
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for e in lhs.entries {
            guard let v = rhs[e.key], v == e.value else { return false }
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        // Order-independent: combine each member's own hash commutatively.
        var sum = 0
        for e in entries {
            var h = Hasher()
            h.combine(e.key)
            h.combine(e.value)
            sum &+= h.finalize()
        }
        hasher.combine(entries.count)
        hasher.combine(sum)
    }
}
