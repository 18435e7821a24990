/// The header fields of a request, in arrival order; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Sequence {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(name: String, value: String)] = []) {
        self.fields = fields
    }

    /// The first value of `name`, compared without regard to ASCII case.
    public subscript(_ name: String) -> String? {
        for field in fields where HTTPHeaders.equalIgnoringASCIICase(field.name, name) {
            return field.value
        }
        return nil
    }

    static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        for (x, y) in zip(a.utf8, b.utf8) where x != y {
            let lowerX = x >= 65 && x <= 90 ? x | 0x20 : x
            let lowerY = y >= 65 && y <= 90 ? y | 0x20 : y
            if lowerX != lowerY { return false }
        }
        return true
    }

    public mutating func append(_ name: String, _ value: String) {
        fields.append((name, value))
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        fields.makeIterator()
    }
}
