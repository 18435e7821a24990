extension JSONValue {
    /// Compact JSON as UTF-8: no whitespace, object members in their order, integers exact,
    /// doubles in their shortest round-trip form (a non-finite double, which JSON cannot
    /// express, is written as `null`).
    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        serialize(into: &out)
        return out
    }

    /// Compact JSON as a string.
    public var jsonString: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Appends the compact JSON of this value to `out`.
    public func serialize(into out: inout [UInt8]) {
        switch self {
        case .null:
            out.append(contentsOf: "null".utf8)
        case .bool(let b):
            out.append(contentsOf: b ? "true".utf8 : "false".utf8)
        case .int(let v):
            JSONValue.appendInteger(v, to: &out)
        case .double(let d):
            if d.isFinite {
                out.append(contentsOf: d.description.utf8)
            } else {
                out.append(contentsOf: "null".utf8)
            }
        case .string(let s):
            JSONValue.appendString(s, to: &out)
        case .array(let a):
            out.append(UInt8(ascii: "["))
            var first = true
            for element in a {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                element.serialize(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in o {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSONValue.appendString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                value.serialize(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Appends the decimal digits of `v` to `out`, without allocating.
    @inlinable
    public static func appendInteger(_ v: Int64, to out: inout [UInt8]) {
        if v < 0 { out.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, no allocation
        withUnsafeMutableBytes(of: &digits) { buf in
            var k = buf.count
            while m > 0 {
                k -= 1
                buf[k] = UInt8(ascii: "0") + UInt8(m % 10)
                m /= 10
            }
            out.append(contentsOf: buf[k...])
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// How `appendString` writes U+0008 and U+000C: `.short` as `\b` and `\f` (every JSON
    /// value flowd serialises), `.unicode` as `\u0008` and `\u000c` (the bytes FlowdHTTP's
    /// own `{"detail": …}` answers have always had; clients see them, so they stay).
    public enum ControlEscapes: Sendable {
        case short
        case unicode
    }

    /// Appends `s` as a JSON string literal: `"` and `\` escaped, `\n`, `\r` and `\t` as short
    /// escapes, U+0008 and U+000C as `controlEscapes` says, every other control character as
    /// `\u00xx`; everything else (`/`, DEL, non-ASCII) as its UTF-8, unescaped.
    public static func appendString(_ s: String, to out: inout [UInt8], controlEscapes: ControlEscapes = .short) {
        let short = controlEscapes == .short
        var s = s
        s.withUTF8 { bytes in
            out.append(UInt8(ascii: "\""))
            var runStart = 0
            for (k, b) in bytes.enumerated() where b < 0x20 || b == 0x22 || b == 0x5C {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<k]))
                runStart = k + 1
                out.append(UInt8(ascii: "\\"))
                switch b {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x08 where short: out.append(UInt8(ascii: "b"))
                case 0x0C where short: out.append(UInt8(ascii: "f"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                            hexDigits[Int(b >> 4)], hexDigits[Int(b & 0xF)]])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart...]))
            out.append(UInt8(ascii: "\""))
        }
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { jsonString }
}
