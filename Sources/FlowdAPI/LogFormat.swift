/// Cheap number formatting for log lines (a Double's description is slow on a hot path).
enum LogFormat {
    /// `1.234` (milliseconds, three decimals).
    static func milliseconds(_ duration: Duration) -> String {
        let micros = max(0, duration.nanoseconds / 1_000)
        let fraction = micros % 1_000
        return "\(micros / 1_000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + "\(fraction)"
    }
}
