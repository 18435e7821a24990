import FlowdSync
import FlowEngine
import Logging

/// PocketFlow's test store: a dictionary of numbers and notes.
struct Numbers: Sendable {
    var current = 0
    var log: [String] = []
}

typealias NumberStore = SharedStore<Numbers>

struct SetNumber: Node {
    typealias Shared = NumberStore
    let number: Int
    func prep(_ shared: NumberStore, context: NodeContext) async throws {
        shared.withLock { $0.current = number }
    }
}

struct AddNumber: Node {
    typealias Shared = NumberStore
    let number: Int
    func prep(_ shared: NumberStore, context: NodeContext) async throws {
        shared.withLock { $0.current += number }
    }
}

struct MultiplyNumber: Node {
    typealias Shared = NumberStore
    let number: Int
    func prep(_ shared: NumberStore, context: NodeContext) async throws {
        shared.withLock { $0.current *= number }
    }
}

struct CheckPositive: Node {
    typealias Shared = NumberStore
    func post(_ shared: NumberStore, prepResult: Void, execResult: Void, context: NodeContext) async throws -> Action? {
        shared.value.current >= 0 ? "positive" : "negative"
    }
}

struct Signal: Node {
    typealias Shared = NumberStore
    let signal: String
    func post(_ shared: NumberStore, prepResult: Void, execResult: Void, context: NodeContext) async throws -> Action? {
        signal
    }
}

struct TestFailure: Error, Equatable {
    var message: String
}

/// Collects log messages so tests can see the engine's warnings.
final class LogCapture: Sendable {
    let messages = Locked<[String]>([])

    var logger: Logger {
        Logger(label: "test") { _ in CapturingHandler(capture: self) }
    }

    var all: [String] { messages.withLock { $0 } }
}

struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        capture.messages.withLock { $0.append("\(event.level): \(event.message)") }
    }
}

/// Records observer events in order.
final class EventRecorder: StepObserver {
    let events = Locked<[String]>([])

    func stepStarted(_ name: String) async { events.withLock { $0.append("started \(name)") } }
    func stepCompleted(_ name: String, duration: Duration) async { events.withLock { $0.append("completed \(name)") } }
    func stepFailed(_ name: String, duration: Duration, error: any Error) async {
        events.withLock { $0.append("failed \(name)") }
    }

    var all: [String] { events.withLock { $0 } }
}
