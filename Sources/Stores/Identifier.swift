/// The identifier patterns of the API, checked by hand (ASCII only, no regex).
///
/// - ids (story, document, run): `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`
/// - memory keys: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$`
///
/// Any non-ASCII byte fails, so counting bytes is counting Unicode scalars.
public enum Identifier {
    public static let maxIDLength = 128
    public static let maxMemoryKeyLength = 256

    /// `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`
    public static func isValidID(_ s: String) -> Bool {
        matches(s, maxLength: maxIDLength, allowColon: false)
    }

    /// `^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$`
    public static func isValidMemoryKey(_ s: String) -> Bool {
        matches(s, maxLength: maxMemoryKeyLength, allowColon: true)
    }

    private static func matches(_ s: String, maxLength: Int, allowColon: Bool) -> Bool {
        var count = 0
        for b in s.utf8 {
            count += 1
            if count > maxLength { return false }
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                continue
            case UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                if count == 1 { return false }
            case UInt8(ascii: ":"):
                if count == 1 || !allowColon { return false }
            default:
                return false
            }
        }
        return count > 0
    }
}
