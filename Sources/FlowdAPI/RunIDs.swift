import FlowdSync
import Foundation

/// Run ids: random version-4 UUIDs in lower case, valid identifiers (they appear in
/// `/runs/{id}`). Made from the kernel's random bytes, drawn 4 KiB at a time (one
/// `getrandom` per 256 ids) without Foundation's UUID, which costs a file open per id here.
public enum RunIDs {
    private static let pool = Locked(RandomBytes())

    /// Random bytes from `arc4random_buf` (which is `getrandom`), refilled when used up.
    private struct RandomBytes {
        var bytes = [UInt8](repeating: 0, count: 4096)
        var next = 4096

        mutating func take16() -> (UInt64, UInt64) {
            if next + 16 > bytes.count {
                bytes.withUnsafeMutableBytes { arc4random_buf($0.baseAddress!, $0.count) }
                next = 0
            }
            defer { next += 16 }
            return bytes.withUnsafeBytes {
                ($0.loadUnaligned(fromByteOffset: next, as: UInt64.self), $0.loadUnaligned(fromByteOffset: next + 8, as: UInt64.self))
            }
        }
    }

    public static func make() -> String {
        var (high, low) = pool.withLock { $0.take16() }
        high = (high & ~0xF000) | 0x4000                       // version 4
        low = (low & ~(0xC000 << 48)) | (0x8000 << 48)           // variant 10
        return String(unsafeUninitializedCapacity: 36) { out in
            let hex: StaticString = "0123456789abcdef"
            var position = 0
            for word in [high, low] {
                var bits = 60
                while bits >= 0 {
                    if position == 8 || position == 13 || position == 18 || position == 23 {
                        out[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    out[position] = hex.utf8Start[Int((word >> UInt64(bits)) & 0xF)]
                    position += 1
                    bits -= 4
                }
            }
            return 36
        }
    }
}
