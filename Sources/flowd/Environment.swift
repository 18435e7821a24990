import ArgumentParser
import Foundation

/// The process environment, read once; a flag given on the command line wins over it.
struct Environment {
    var variables: [String: String]

    static var current: Environment { Environment(variables: ProcessInfo.processInfo.environment) }

    func value(_ flag: String?, _ name: String) -> String? {
        flag ?? variables[name]
    }

    func number(_ flag: Int?, _ name: String, in range: ClosedRange<Int>) throws -> Int? {
        let value: Int
        if let flag {
            value = flag
        } else if let text = variables[name] {
            guard let parsed = Int(text) else { throw ValidationError("\(name)=\(text) is not a whole number") }
            value = parsed
        } else {
            return nil
        }
        guard range.contains(value) else { throw ValidationError("\(name.flagName) must be in \(range.lowerBound)...\(range.upperBound), not \(value)") }
        return value
    }

    func seconds(_ flag: Double?, _ name: String) throws -> Double? {
        let value: Double
        if let flag {
            value = flag
        } else if let text = variables[name] {
            guard let parsed = Double(text) else { throw ValidationError("\(name)=\(text) is not a number") }
            value = parsed
        } else {
            return nil
        }
        guard value.isFinite, value >= 0 else { throw ValidationError("\(name.flagName) must be a number of at least 0, not \(value)") }
        return value
    }
}

extension String {
    /// `FLOWD_MAX_BODY` → `--max-body`.
    var flagName: String {
        "--" + dropFirst("FLOWD_".count).lowercased().replacingOccurrences(of: "_", with: "-")
    }
}
