/// An iterative (no recursion) parser over UTF-8 buffers. One parser can parse many
/// documents in turn and reuses its stacks (memory replay parses a million lines).
///
/// Besides whole documents (`parseDocument`), it reads a document piece by piece (`begin`,
/// then `consume`, `readString`, `skipContainer`…): the JSONL logs in `Stores` read their
/// records' envelopes this way without building them. The buffer being read must outlive
/// the reads. The small piecewise reads are `@inlinable` because they run per byte of
/// every replayed line, from another module.
public struct JSONParser {
    @usableFromInline var p = UnsafeBufferPointer<UInt8>(start: nil, count: 0)
    @usableFromInline var n = 0
    private let maxDepth: Int
    @usableFromInline var i = 0

    /// Open containers: elements of every open container live on one value stack,
    /// the keys of open objects on one key stack.
    private struct Frame {
        var isObject: Bool
        var valueStart: Int
        var keyStart: Int
    }
    private var frames: [Frame] = []
    private var values: [JSONValue] = []
    private var keys: [String] = []

    public init(maxDepth: Int = JSONValue.defaultMaxDepth) {
        self.maxDepth = maxDepth
    }

    private func fail(_ message: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? i, message: message)
    }

    @inlinable @inline(__always)
    mutating func skipWhitespace() {
        while i < n {
            switch p[i] {
            case 0x20, 0x0A, 0x0D, 0x09: i += 1
            default: return
            }
        }
    }

    /// Parses `buffer` as one JSON text. The buffer need only live for the call.
    public mutating func parseDocument(_ buffer: UnsafeBufferPointer<UInt8>) throws(JSONParseError) -> JSONValue {
        p = buffer
        n = buffer.count
        i = 0
        frames.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        defer { p = UnsafeBufferPointer(start: nil, count: 0) }
        let value = try parseValue()
        skipWhitespace()
        guard i == n else { throw fail("unexpected data after the JSON value") }
        return value
    }

    private mutating func openContainer(isObject: Bool) {
        frames.append(Frame(isObject: isObject, valueStart: values.count, keyStart: keys.count))
    }

    /// Reads `"key" :` and pushes the key.
    private mutating func parseKey() throws(JSONParseError) {
        skipWhitespace()
        guard i < n, p[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
        keys.append(try parseString())
        skipWhitespace()
        guard i < n, p[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        i += 1
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        while true {
            // Parse the start of a value: a scalar, an empty container, or open a container.
            skipWhitespace()
            guard i < n else { throw fail("unexpected end of input") }
            var value: JSONValue
            switch p[i] {
            case UInt8(ascii: "{"):
                guard frames.count < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
                i += 1
                skipWhitespace()
                if i < n, p[i] == UInt8(ascii: "}") {
                    i += 1
                    value = .object(JSONObject())
                } else {
                    openContainer(isObject: true)
                    try parseKey()
                    continue
                }
            case UInt8(ascii: "["):
                guard frames.count < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
                i += 1
                skipWhitespace()
                if i < n, p[i] == UInt8(ascii: "]") {
                    i += 1
                    value = .array([])
                } else {
                    openContainer(isObject: false)
                    continue
                }
            case UInt8(ascii: "\""):
                value = .string(try parseString())
            case UInt8(ascii: "t"):
                try expectLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try expectLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try expectLiteral("null")
                value = .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = try parseNumber()
            default:
                throw fail("unexpected character")
            }

            // Attach the value to the open containers, closing those that end here.
            while true {
                guard let frame = frames.last else { return value }
                values.append(value)
                skipWhitespace()
                guard i < n else { throw fail("unexpected end of input") }
                let c = p[i]
                i += 1
                if c == UInt8(ascii: ",") {
                    if frame.isObject { try parseKey() }
                    break  // parse the next element
                }
                if frame.isObject {
                    guard c == UInt8(ascii: "}") else { throw fail("expected ',' or '}'", at: i - 1) }
                    value = .object(JSONObject(keys: keys[frame.keyStart...], values: values[frame.valueStart...]))
                    keys.removeSubrange(frame.keyStart...)
                } else {
                    guard c == UInt8(ascii: "]") else { throw fail("expected ',' or ']'", at: i - 1) }
                    value = .array(Array(values[frame.valueStart...]))
                }
                values.removeSubrange(frame.valueStart...)
                frames.removeLast()
            }
        }
    }

    private mutating func expectLiteral(_ word: StaticString) throws(JSONParseError) {
        let count = word.utf8CodeUnitCount
        guard n - i >= count else { throw fail("invalid literal") }
        let w = word.utf8Start
        for k in 0..<count where p[i + k] != w[k] {
            throw fail("invalid literal")
        }
        i += count
    }

    // MARK: Piecewise reading (the memory log reads its records' envelopes without building them)

    /// Starts reading `buffer` piece by piece; it must outlive the reads.
    @inlinable
    public mutating func begin(_ buffer: UnsafeBufferPointer<UInt8>) {
        p = buffer
        n = buffer.count
        i = 0
    }

    /// Skips whitespace, then consumes `byte` if it is next.
    @inlinable
    public mutating func consume(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard i < n, p[i] == byte else { return false }
        i += 1
        return true
    }

    /// True when only whitespace is left.
    @inlinable
    public mutating func atEnd() -> Bool {
        skipWhitespace()
        return i == n
    }

    /// The bytes of the next string if it is plain ASCII without escapes (no allocation);
    /// nil, with nothing consumed, otherwise.
    @inlinable
    public mutating func readPlainString() -> UnsafeBufferPointer<UInt8>? {
        skipWhitespace()
        guard i < n, p[i] == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        while j < n {
            let b = p[j]
            if b == UInt8(ascii: "\"") {
                let s = UnsafeBufferPointer(rebasing: p[(i + 1)..<j])
                i = j + 1
                return s
            }
            if b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80 { return nil }
            j += 1
        }
        return nil
    }

    /// The next string, decoded.
    public mutating func readString() throws(JSONParseError) -> String {
        skipWhitespace()
        guard i < n, p[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        return try parseString()
    }

    /// The next value, whole.
    public mutating func readValue() throws(JSONParseError) -> JSONValue {
        frames.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        keys.removeAll(keepingCapacity: true)
        return try parseValue()
    }

    /// Offset of the next byte to read, after skipping whitespace.
    @inlinable
    public mutating func position() -> Int {
        skipWhitespace()
        return i
    }

    /// Offset of the next byte to read (right after the last value read).
    @inlinable
    public var offset: Int { i }

    /// Skips the next array or object without building it; returns its byte range, or nil
    /// (nothing consumed) when the next value is not a container or does not close.
    /// Only brackets and string quotes are checked: the skipped bytes are parsed, strictly,
    /// when they are read (the run log reads a finished run's events on demand).
    public mutating func skipContainer() -> Range<Int>? {
        skipWhitespace()
        guard i < n, p[i] == UInt8(ascii: "[") || p[i] == UInt8(ascii: "{") else { return nil }
        let start = i
        var depth = 0
        var j = i
        while j < n {
            switch p[j] {
            case UInt8(ascii: "\""):
                j += 1
                while j < n, p[j] != UInt8(ascii: "\"") {
                    j += p[j] == UInt8(ascii: "\\") ? 2 : 1
                }
                guard j < n else { return nil }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                guard depth <= maxDepth else { return nil }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
                if depth == 0 {
                    i = j + 1
                    return start..<i
                }
            default:
                break
            }
            j += 1
        }
        return nil
    }

    // MARK: Strings

    /// At the opening quote; returns the decoded string and leaves `i` after the closing quote.
    private mutating func parseString() throws(JSONParseError) -> String {
        i += 1
        let start = i
        // Fast path: no escapes. UTF-8 is validated in place.
        while i < n {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("control character in string") }
            if b < 0x80 {
                i += 1
            } else {
                i += try validateUTF8Sequence(at: i)
            }
        }
        guard i < n else { throw fail("unterminated string", at: start - 1) }
        // Slow path: copy what we have and decode escapes.
        var out = [UInt8](UnsafeBufferPointer(rebasing: p[start..<i]))
        out.reserveCapacity(out.count + 16)
        while i < n {
            let b = p[i]
            if b == UInt8(ascii: "\"") {
                i += 1
                return String(decoding: out, as: UTF8.self)
            }
            if b == UInt8(ascii: "\\") {
                try parseEscape(into: &out)
            } else if b < 0x20 {
                throw fail("control character in string")
            } else if b < 0x80 {
                out.append(b)
                i += 1
            } else {
                let len = try validateUTF8Sequence(at: i)
                out.append(contentsOf: UnsafeBufferPointer(rebasing: p[i..<(i + len)]))
                i += len
            }
        }
        throw fail("unterminated string", at: start - 1)
    }

    /// Length of the well-formed UTF-8 sequence (RFC 3629) starting at `at`.
    private func validateUTF8Sequence(at j: Int) throws(JSONParseError) -> Int {
        let b0 = p[j]
        @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
            j + k < n && p[j + k] >= lo && p[j + k] <= hi
        }
        let ok: Bool
        let len: Int
        switch b0 {
        case 0xC2...0xDF: len = 2; ok = cont(1)
        case 0xE0: len = 3; ok = cont(1, 0xA0) && cont(2)
        case 0xE1...0xEC, 0xEE...0xEF: len = 3; ok = cont(1) && cont(2)
        case 0xED: len = 3; ok = cont(1, 0x80, 0x9F) && cont(2)
        case 0xF0: len = 4; ok = cont(1, 0x90) && cont(2) && cont(3)
        case 0xF1...0xF3: len = 4; ok = cont(1) && cont(2) && cont(3)
        case 0xF4: len = 4; ok = cont(1, 0x80, 0x8F) && cont(2) && cont(3)
        default: len = 0; ok = false
        }
        guard ok else { throw fail("invalid UTF-8 in string", at: j) }
        return len
    }

    private mutating func parseEscape(into out: inout [UInt8]) throws(JSONParseError) {
        let at = i
        i += 1
        guard i < n else { throw fail("unterminated string") }
        let c = p[i]
        i += 1
        switch c {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try parseHex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard n - i >= 6, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") else {
                    throw fail("lone surrogate in \\u escape", at: at)
                }
                i += 2
                let low = try parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else { throw fail("lone surrogate in \\u escape", at: at) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw fail("lone surrogate in \\u escape", at: at)
            }
            appendUTF8(scalar, to: &out)
        default:
            throw fail("invalid escape", at: at)
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard n - i >= 4 else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = p[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    private func appendUTF8(_ s: UInt32, to out: inout [UInt8]) {
        switch s {
        case 0..<0x80:
            out.append(UInt8(s))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (s >> 6)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (s >> 12)))
            out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (s >> 18)))
            out.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        }
    }

    // MARK: Numbers

    private static let exactPowersOf10: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = i
        var negative = false
        if p[i] == UInt8(ascii: "-") {
            negative = true
            i += 1
        }
        @inline(__always) func isDigit(_ k: Int) -> Bool {
            k < n && p[k] >= UInt8(ascii: "0") && p[k] <= UInt8(ascii: "9")
        }
        guard isDigit(i) else { throw fail("invalid number", at: start) }
        // Mantissa digits, accumulated while they fit (up to 19 digits).
        var mantissa: UInt64 = 0
        var digits = 0
        var overflow = false
        @inline(__always) func accumulate(_ d: UInt8) {
            if digits < 19 {
                mantissa = mantissa &* 10 &+ UInt64(d - UInt8(ascii: "0"))
                if mantissa != 0 { digits += 1 }
            } else {
                overflow = true
            }
        }
        if p[i] == UInt8(ascii: "0") {
            i += 1
            if isDigit(i) { throw fail("leading zero in number", at: start) }
        } else {
            while isDigit(i) {
                accumulate(p[i])
                i += 1
            }
        }
        var isInteger = true
        var fractionDigits = 0
        if i < n, p[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard isDigit(i) else { throw fail("invalid number", at: start) }
            while isDigit(i) {
                if !overflow { fractionDigits += 1 }
                accumulate(p[i])
                i += 1
            }
        }
        var exponent = 0
        if i < n, p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            var expNegative = false
            if i < n, p[i] == UInt8(ascii: "+") || p[i] == UInt8(ascii: "-") {
                expNegative = p[i] == UInt8(ascii: "-")
                i += 1
            }
            guard isDigit(i) else { throw fail("invalid number", at: start) }
            while isDigit(i) {
                if exponent < 100_000 { exponent = exponent * 10 + Int(p[i] - UInt8(ascii: "0")) }
                i += 1
            }
            if expNegative { exponent = -exponent }
        }
        if isInteger && !overflow {
            if negative {
                if mantissa <= UInt64(Int64.max) + 1 { return .int(Int64(truncatingIfNeeded: 0 &- mantissa)) }
            } else if mantissa <= UInt64(Int64.max) {
                return .int(Int64(mantissa))
            }
        }
        // Clinger's fast path: exact mantissa and an exactly representable power of ten.
        let e10 = exponent - fractionDigits
        if !overflow, mantissa <= (1 << 53), e10 >= -22, e10 <= 22 {
            var d = Double(mantissa)
            d = e10 < 0 ? d / Self.exactPowersOf10[-e10] : d * Self.exactPowersOf10[e10]
            return .double(negative ? -d : d)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self)
        guard let d = Double(text), d.isFinite else { throw fail("number out of range", at: start) }
        return .double(d)
    }
}
